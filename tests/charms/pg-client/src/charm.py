#!/usr/bin/env python3
"""Asks for a database with the v0 library; its status shows what it was given.

The request's fields come from the charm's options (roles, group roles, an
entity and its permissions, a name of its own); a status the provider raises
on the relation blocks the charm with the provider's message.
"""

import json
from pathlib import Path

import ops
from charms.data_platform_libs.v0.data_interfaces import DatabaseRequires

# What the library's events brought, kept between hooks (the charm's own files).
ENTITY = Path("entity.json")
RAISED = Path("raised.json")

# Option name -> DatabaseRequires argument, passed only when set.
OPTIONAL = {
    "extra-group-roles": "extra_group_roles",
    "entity-type": "entity_type",
    "entity-permissions": "entity_permissions",
    "requested-entity-name": "requested_entity_name",
    "requested-entity-password": "requested_entity_password",
}


class ClientCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        extra = {arg: self.config[opt] for opt, arg in OPTIONAL.items() if self.config.get(opt)}
        self.database = DatabaseRequires(
            self,
            relation_name="database",
            database_name=self.config["database"],
            extra_user_roles=self.config["extra-user-roles"] or None,
            **extra,
        )
        for event in (
            self.database.on.database_created,
            self.database.on.endpoints_changed,
            self.database.on.read_only_endpoints_changed,
            self.database.on.prefix_databases_changed,
        ):
            framework.observe(event, self._show)
        framework.observe(self.database.on.database_entity_created, self._entity)
        framework.observe(self.database.on.status_raised, self._raised)
        framework.observe(self.database.on.status_resolved, self._resolved)
        framework.observe(self.on.start, self._show)
        framework.observe(self.on.get_credentials_action, self._get_credentials)

    def _entity(self, event):
        ENTITY.write_text(
            json.dumps({"name": event.entity_name, "password": event.entity_password or ""})
        )
        self._show(event)

    def _raised(self, event):
        RAISED.write_text(json.dumps({"code": event.status.code, "message": event.status.message}))
        self._show(event)

    def _resolved(self, event):
        RAISED.unlink(missing_ok=True)
        self._show(event)

    def _show(self, _event):
        relations = self.model.relations["database"]
        if not relations:
            self.unit.status = ops.BlockedStatus("needs a database relation")
            return
        if RAISED.exists():
            raised = json.loads(RAISED.read_text())
            self.unit.status = ops.BlockedStatus(f"{raised['code']}: {raised['message']}")
            return
        data = self.database.fetch_relation_data()[relations[0].id]
        if ENTITY.exists() and "endpoints" in data:
            entity = json.loads(ENTITY.read_text())["name"]
            self.unit.status = ops.ActiveStatus(f"entity {entity}@{data['endpoints']}")
            return
        if "endpoints" not in data or "password" not in data:
            self.unit.status = ops.WaitingStatus("waiting for credentials")
            return
        prefix = data.get("prefix-databases")
        self.unit.status = ops.ActiveStatus(
            f"{data['username']}@{data['endpoints']} ro={data.get('read-only-endpoints', '')}"
            + (f" prefix={prefix}" if prefix else "")
        )

    def _get_credentials(self, event: ops.ActionEvent):
        relations = self.model.relations["database"]
        data = self.database.fetch_relation_data()[relations[0].id] if relations else {}
        if ENTITY.exists():
            entity = json.loads(ENTITY.read_text())
            data = dict(data, username=entity["name"], password=entity["password"])
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
                "prefix-databases": data.get("prefix-databases", ""),
            }
        )


if __name__ == "__main__":
    ops.main(ClientCharm)
