#!/usr/bin/env python3
"""A plain ops charm: a peer relation, config, statuses and an application secret."""

import datetime

import ops


class OpsPeerCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.install, self._on_install)
        framework.observe(self.on.leader_elected, self._on_leader_elected)
        framework.observe(self.on.config_changed, self._on_config_changed)
        framework.observe(self.on.replicas_relation_changed, self._on_peers_changed)
        framework.observe(self.on.greet_action, self._on_greet)
        framework.observe(self.on.rotate_token_action, self._on_rotate_token)
        framework.observe(self.on.secret_rotate, self._on_secret_rotate)
        framework.observe(self.on.secret_expired, self._on_secret_expired)

    def _on_install(self, _):
        self.unit.status = ops.MaintenanceStatus("installing")

    def _on_leader_elected(self, _):
        peers = self.model.get_relation("replicas")
        try:
            # A new leader finds the secret its predecessor made; by label, ops
            # knows its id only after asking for its info.
            secret_id = self.model.get_secret(label="ops-peer.token").get_info().id
        except ops.SecretNotFoundError:
            secret_id = self.app.add_secret({"token": "s3cret-token"}, label="ops-peer.token").id
        peers.data[self.app]["token-id"] = secret_id
        self.app.status = ops.ActiveStatus("leading")

    def _on_config_changed(self, _):
        greeting = self.config["greeting"]
        self.model.get_relation("replicas").data[self.unit]["greeting"] = greeting
        self.unit.status = ops.ActiveStatus(f"greeting {greeting}")

    def _on_peers_changed(self, event):
        token_id = event.relation.data[self.app].get("token-id")
        if token_id and not self.unit.is_leader():
            token = self.model.get_secret(id=token_id).get_content()["token"]
            event.relation.data[self.unit]["token-seen"] = token
            self.unit.status = ops.ActiveStatus("has the token")

    def _on_greet(self, event):
        event.log(f"greeting {event.params['name']}")
        if event.params["fail"]:
            event.fail("asked to fail")
            return
        event.set_results({"greeting": f"{self.config['greeting']} {event.params['name']}"})

    def _on_rotate_token(self, event):
        secret = self.model.get_secret(label="ops-peer.token")
        secret.set_info(rotate=ops.SecretRotate.HOURLY, expire=datetime.timedelta(hours=1))
        event.set_results({"id": secret.get_info().id})

    def _on_secret_rotate(self, event):
        rotations = int(self._peers_app_data().get("rotations", "0")) + 1
        event.secret.set_content({"token": f"rotated-{rotations}"})
        self._peers_app_data()["rotations"] = str(rotations)

    def _on_secret_expired(self, event):
        self._peers_app_data()["expired"] = str(event.revision)

    def _peers_app_data(self):
        return self.model.get_relation("replicas").data[self.app]


if __name__ == "__main__":
    ops.main(OpsPeerCharm)
