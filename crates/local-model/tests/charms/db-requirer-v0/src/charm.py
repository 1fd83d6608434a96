#!/usr/bin/env python3
"""Asks for a database with the v0 library and records what database_created brings."""

import json

import ops
from charms.data_platform_libs.v0.data_interfaces import DatabaseCreatedEvent, DatabaseRequires


class RequirerCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.database = DatabaseRequires(self, relation_name="database", database_name="app_db", extra_user_roles="CREATEDB")
        framework.observe(self.database.on.database_created, self._on_database_created)

    def _on_database_created(self, event: DatabaseCreatedEvent):
        got = {"username": event.username, "password": event.password, "endpoints": event.endpoints, "database": event.database, "version": event.version}
        with open("credentials.json", "w") as f:
            json.dump(got, f)
        self.unit.status = ops.ActiveStatus(f"{event.username}@{event.endpoints}")


if __name__ == "__main__":
    ops.main(RequirerCharm)
