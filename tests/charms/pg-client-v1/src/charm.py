#!/usr/bin/env python3
"""Asks for a database with the v1 library; its status shows what it was given.

The request's fields come from the charm's options (roles, group roles, an
entity and its permissions); a status the provider raises on the relation
blocks the charm with the provider's message.
"""

import json
from pathlib import Path

import ops
from dpcharmlibs.interfaces import (
    RequirerCommonModel,
    ResourceProviderModel,
    ResourceRequirerEventHandler,
)

# What the library's events brought, kept between hooks (the charm's own file).
RECEIVED = Path("received.json")
RAISED = Path("raised.json")
FIELDS = (
    "username",
    "password",
    "endpoints",
    "read_only_endpoints",
    "resource",
    "tls",
    "tls_ca",
    "entity_name",
    "entity_password",
    "prefix_resources",
)


def plain(value):
    """A field's value, unwrapped from pydantic's secret types."""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


class ClientCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        fields = {"resource": self.config["database"]}
        for option in ("extra-user-roles", "extra-group-roles", "entity-type"):
            if self.config.get(option):
                fields[option.replace("-", "_")] = self.config[option]
        if self.config.get("entity-permissions"):
            fields["entity_permissions"] = json.loads(self.config["entity-permissions"])
        requests = [RequirerCommonModel(**fields)]
        self.database = ResourceRequirerEventHandler(
            self, "database", requests, response_model=ResourceProviderModel
        )
        for event in (
            self.database.on.resource_created,
            self.database.on.resource_entity_created,
            self.database.on.endpoints_changed,
            self.database.on.read_only_endpoints_changed,
            self.database.on.prefix_resources_changed,
        ):
            framework.observe(event, self._record)
        framework.observe(self.database.on.status_raised, self._raised)
        framework.observe(self.database.on.status_resolved, self._resolved)
        framework.observe(self.on.start, self._show)
        framework.observe(self.on.get_credentials_action, self._get_credentials)

    def _record(self, event):
        received = json.loads(RECEIVED.read_text()) if RECEIVED.exists() else {}
        for field in FIELDS:
            value = plain(getattr(event.response, field, None))
            if value is not None:
                received[field] = value
        # An entity's credentials are what it logs in with.
        if received.get("entity_name"):
            received["username"] = received["entity_name"]
            received["password"] = received.get("entity_password") or ""
        RECEIVED.write_text(json.dumps(received))
        self._show(event)

    def _raised(self, event):
        RAISED.write_text(json.dumps({"code": event.status.code, "message": event.status.message}))
        self._show(event)

    def _resolved(self, event):
        RAISED.unlink(missing_ok=True)
        self._show(event)

    def _show(self, _event):
        if not self.model.relations["database"]:
            self.unit.status = ops.BlockedStatus("needs a database relation")
            return
        if RAISED.exists():
            raised = json.loads(RAISED.read_text())
            self.unit.status = ops.BlockedStatus(f"{raised['code']}: {raised['message']}")
            return
        received = json.loads(RECEIVED.read_text()) if RECEIVED.exists() else {}
        if "password" not in received or "endpoints" not in received:
            self.unit.status = ops.WaitingStatus("waiting for credentials")
            return
        self.unit.status = ops.ActiveStatus(
            f"{received['username']}@{received['endpoints']} ro={received.get('read_only_endpoints', '')}"
        )

    def _get_credentials(self, event: ops.ActionEvent):
        received = json.loads(RECEIVED.read_text()) if RECEIVED.exists() else {}
        if "password" not in received:
            event.fail("no credentials yet")
            return
        event.set_results(
            {
                "username": received["username"],
                "password": received["password"],
                "database": received.get("resource", self.config["database"]),
                "endpoints": received["endpoints"],
                "read-only-endpoints": received.get("read_only_endpoints", ""),
                "tls": str(received.get("tls", "")),
                "tls-ca": received.get("tls_ca") or "",
                "prefix-databases": received.get("prefix_resources") or "",
            }
        )


if __name__ == "__main__":
    ops.main(ClientCharm)
