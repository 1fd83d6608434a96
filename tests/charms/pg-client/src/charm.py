#!/usr/bin/env python3
"""Asks for a database with the v0 library; its status shows what it was given."""

import ops
from charms.data_platform_libs.v0.data_interfaces import DatabaseRequires


class ClientCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.database = DatabaseRequires(
            self,
            relation_name="database",
            database_name=self.config["database"],
            extra_user_roles=self.config["extra-user-roles"] or None,
        )
        for event in (
            self.database.on.database_created,
            self.database.on.endpoints_changed,
            self.database.on.read_only_endpoints_changed,
        ):
            framework.observe(event, self._show)
        framework.observe(self.on.start, self._show)
        framework.observe(self.on.get_credentials_action, self._get_credentials)

    def _show(self, _event):
        relations = self.model.relations["database"]
        if not relations:
            self.unit.status = ops.BlockedStatus("needs a database relation")
            return
        data = self.database.fetch_relation_data()[relations[0].id]
        if "endpoints" not in data or "password" not in data:
            self.unit.status = ops.WaitingStatus("waiting for credentials")
            return
        self.unit.status = ops.ActiveStatus(
            f"{data['username']}@{data['endpoints']} ro={data.get('read-only-endpoints', '')}"
        )

    def _get_credentials(self, event: ops.ActionEvent):
        relations = self.model.relations["database"]
        data = self.database.fetch_relation_data()[relations[0].id] if relations else {}
        if "password" not in data:
            event.fail("no credentials yet")
            return
        event.set_results(
            {
                "username": data["username"],
                "password": data["password"],
                "database": data.get("database", self.config["database"]),
                "endpoints": data["endpoints"],
                "read-only-endpoints": data.get("read-only-endpoints", ""),
                "tls": data.get("tls", ""),
                "tls-ca": data.get("tls-ca", ""),
            }
        )


if __name__ == "__main__":
    ops.main(ClientCharm)
