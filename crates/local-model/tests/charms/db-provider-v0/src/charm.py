#!/usr/bin/env python3
"""Answers database_requested with the v0 library, as a PostgreSQL charm would."""

import ops
from charms.data_platform_libs.v0.data_interfaces import DatabaseProvides, DatabaseRequestedEvent


class ProviderCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.provider = DatabaseProvides(self, relation_name="database")
        framework.observe(self.provider.on.database_requested, self._on_database_requested)

    def _on_database_requested(self, event: DatabaseRequestedEvent):
        rid = event.relation.id
        self.provider.set_database(rid, event.database)
        self.provider.set_credentials(rid, f"relation_id_{rid}", "provider-password")
        self.provider.set_endpoints(rid, "10.9.0.1:5432")
        self.provider.set_version(rid, "15.18")
        self.unit.status = ops.ActiveStatus(f"served {event.database} ({event.extra_user_roles})")


if __name__ == "__main__":
    ops.main(ProviderCharm)
