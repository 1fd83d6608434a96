#!/usr/bin/env python3
"""Answers `database` requests with the v0 library, as a provider charm does.

No database stands behind it: the credentials are made up and the endpoint is
the unit's own address. It shows what an `ops` charm costs per hook for the
same relation life as the PgBouncer charm's.
"""

import secrets

import ops
from charms.data_platform_libs.v0.data_interfaces import DatabaseProvides


class ProviderCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.database = DatabaseProvides(self, relation_name="database")
        framework.observe(self.database.on.database_requested, self._requested)
        framework.observe(self.on.start, self._start)

    def _start(self, _event):
        self.unit.status = ops.ActiveStatus()

    def _requested(self, event):
        if not self.unit.is_leader():
            return
        relation_id = event.relation.id
        address = self.model.get_binding("database").network.bind_address
        self.database.set_credentials(
            relation_id, f"relation_id_{relation_id}", secrets.token_urlsafe(24)
        )
        self.database.set_endpoints(relation_id, f"{address}:5432")
        self.database.set_database(relation_id, event.database)
        self.database.set_version(relation_id, "15")


if __name__ == "__main__":
    ops.main(ProviderCharm)
