#!/usr/bin/env python3
"""Asks for a database with the v1 library and records what resource_created brings."""

import json

import ops
from dpcharmlibs.interfaces import (
    RequirerCommonModel,
    ResourceCreatedEvent,
    ResourceProviderModel,
    ResourceRequirerEventHandler,
)


class RequirerCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        requests = [RequirerCommonModel(resource="app_db_v1")]
        self.database = ResourceRequirerEventHandler(self, "database", requests, response_model=ResourceProviderModel)
        framework.observe(self.database.on.resource_created, self._on_resource_created)

    def _on_resource_created(self, event: ResourceCreatedEvent):
        r = event.response
        got = {"username": r.username, "password": r.password, "endpoints": r.endpoints, "resource": r.resource}
        got = {k: (v.get_secret_value() if hasattr(v, "get_secret_value") else v) for k, v in got.items()}
        with open("credentials.json", "w") as f:
            json.dump(got, f)
        self.unit.status = ops.ActiveStatus(f"{got['username']}@{got['endpoints']}")


if __name__ == "__main__":
    ops.main(RequirerCharm)
