#!/usr/bin/env python3
"""Answers resource_requested with the v1 library, as a PostgreSQL charm would."""

import ops
from dpcharmlibs.interfaces import (
    RequirerCommonModel,
    ResourceProviderEventHandler,
    ResourceProviderModel,
    ResourceRequestedEvent,
)


class ProviderCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.provided = ResourceProviderEventHandler(self, "database", RequirerCommonModel)
        framework.observe(self.provided.on.resource_requested, self._on_resource_requested)

    def _on_resource_requested(self, event: ResourceRequestedEvent):
        request = event.request
        response = ResourceProviderModel(
            salt=request.salt,
            request_id=request.request_id,
            resource=request.resource,
            username=f"relation_id_{event.relation.id}",
            password="provider-v1-password",
            endpoints="10.9.0.2:5432",
        )
        self.provided.set_response(event.relation.id, response)
        self.unit.status = ops.ActiveStatus(f"served {request.resource}")


if __name__ == "__main__":
    ops.main(ProviderCharm)
