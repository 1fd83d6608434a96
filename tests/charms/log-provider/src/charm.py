#!/usr/bin/env python3
"""A stand-in for Loki: publishes its push URL as the loki_push_api provider
does, and reads back what the requirers published."""

import json

import ops


class LogProviderCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.start, self._publish)
        framework.observe(self.on.config_changed, self._publish)
        framework.observe(self.on.logging_relation_joined, self._publish)
        framework.observe(self.on.logging_relation_changed, self._publish)
        framework.observe(self.on.requirers_action, self._requirers)

    def _publish(self, _):
        url = self.config.get("url", "")
        for relation in self.model.relations["logging"]:
            if url:
                relation.data[self.unit]["endpoint"] = json.dumps({"url": url})
        self.unit.status = ops.ActiveStatus()

    def _requirers(self, event):
        found = {}
        for relation in self.model.relations["logging"]:
            if relation.app is not None:
                found[relation.app.name] = dict(relation.data[relation.app])
        event.set_results({"requirers": json.dumps(found)})


if __name__ == "__main__":
    ops.main(LogProviderCharm)
