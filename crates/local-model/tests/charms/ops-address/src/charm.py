#!/usr/bin/env python3
"""An ops charm that reads the addresses Juju writes into its peers' relation bags."""

import ops


class OpsAddressCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._on_config_changed)
        framework.observe(self.on.replicas_relation_changed, self._on_peer_changed)

    def _on_config_changed(self, _):
        advertise = self.config["advertise"]
        if advertise:
            self.model.get_relation("replicas").data[self.unit]["ingress-address"] = advertise

    def _on_peer_changed(self, event):
        if event.unit is None:
            return
        bag = event.relation.data[event.unit]
        self.unit.status = ops.ActiveStatus(
            f"{event.unit.name} at {bag.get('ingress-address')}"
            f" from {bag.get('private-address')} via {bag.get('egress-subnets')}"
        )


if __name__ == "__main__":
    ops.main(OpsAddressCharm)
