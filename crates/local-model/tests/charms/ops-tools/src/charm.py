#!/usr/bin/env python3
"""Calls the hook tools ops has no model API for, and reports what they printed."""

import json
import pathlib
import subprocess
import sys
import tempfile

import ops


def tool(*args, stdin=None):
    done = subprocess.run(list(args), capture_output=True, text=True, input=stdin)
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr}


class OpsToolsCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.data_storage_attached, self._on_data_attached)
        framework.observe(self.on.install, self._on_install)
        framework.observe(self.on.leader_settings_changed, self._on_leader_settings)
        framework.observe(self.on.probe_action, self._on_probe)
        framework.observe(self.on.share_action, self._on_share)
        framework.observe(self.on.add_data_action, self._on_add_data)
        framework.observe(self.on.background_action, self._on_background)

    def _on_data_attached(self, event):
        location = pathlib.Path(event.storage.location)
        (location / "owner").write_text(self.unit.name)
        attached = tool("state-get", "attached")["out"].strip()
        attached = f"{attached} {event.storage.full_id}".strip()
        tool("state-set", f"attached={attached}")

    def _on_install(self, _):
        # Storage attached before install: the attached list is already there.
        attached = tool("state-get", "attached")["out"].strip()
        self.unit.status = ops.MaintenanceStatus(f"installed with {attached}")

    def _on_leader_settings(self, _):
        token = tool("leader-get", "token")["out"].strip()
        self.unit.status = ops.ActiveStatus(f"token={token}")

    def _on_probe(self, event):
        spec = pathlib.Path(tempfile.mkdtemp()) / "spec.yaml"
        spec.write_text("version: 3\ncontainers: []\n")
        report = {
            "unit-get": tool("unit-get", "private-address"),
            "unit-get-bad": tool("unit-get", "no-such-setting"),
            "leader-get": tool("leader-get", "--format=json"),
            "state-set": tool("state-set", "colour=blue"),
            "state-get": tool("state-get", "colour"),
            "state-get-all": tool("state-get", "--format=json"),
            "state-delete": tool("state-delete", "colour"),
            "state-get-strict": tool("state-get", "--strict", "colour"),
            "storage-list": tool("storage-list", "--format=json", "data"),
            "storage-list-smart": tool("storage-list"),
            "storage-get-bad": tool("storage-get", "-s", "data/99"),
            "ops-storage": [str(s.location) for s in self.model.storages["data"]],
            "credential-get": tool("credential-get", "--format=json"),
            "add-metric": tool("add-metric", "requests=1"),
            "juju-reboot": tool("juju-reboot"),
            "k8s-spec-set": tool("k8s-spec-set", "--file", str(spec)),
            "k8s-spec-get": tool("k8s-spec-get"),
            "pod-spec-get": tool("pod-spec-get"),
            "k8s-raw-set": tool("k8s-raw-set", "--file", "-", stdin="kind: List\n"),
            "k8s-raw-get": tool("k8s-raw-get"),
            "payload-register": tool("payload-register", "docker", "db", "p1", "blue"),
            "payload-status-set": tool("payload-status-set", "db", "p1", "stopped"),
            "payload-status-bad": tool("payload-status-set", "db", "p1", "sleeping"),
            "payload-unregister": tool("payload-unregister", "db", "p1"),
            "payload-unregister-again": tool("payload-unregister", "db", "p1"),
            "resource-get": tool("resource-get", "image"),
            "is-leader": tool("is-leader"),
            "goal-state": tool("goal-state", "--format=json"),
            "config-get": tool("config-get", "--format=json"),
            "opened-ports": tool("opened-ports", "--format=json"),
            "status-get": tool("status-get", "--include-data", "--format=json"),
            "unknown": tool("leader-set", "no-equals-sign"),
        }
        try:
            report["cloud-spec"] = self.model.get_cloud_spec().type
        except ops.ModelError as e:
            report["cloud-spec"] = f"ModelError: {e}"
        event.set_results({"report": json.dumps(report)})

    def _on_share(self, event):
        event.set_results(tool("leader-set", f"token={event.params['token']}"))

    def _on_add_data(self, _):
        self.model.storages.request("data", 1)

    def _on_background(self, event):
        child = subprocess.Popen(["sh", "-c", "while true; do echo tick; sleep 0.05; done"])
        print("started", flush=True)
        sys.stdout.flush()
        event.set_results({"child": str(child.pid)})


if __name__ == "__main__":
    ops.main(OpsToolsCharm)
