#!/usr/bin/env python3
"""An ops charm woken by its workload: a service records a Pebble custom notice."""

import os

import ops

# ops always looks for /charm/containers/<name>/pebble.socket; the local model
# names its sockets' directory in CHARM_CONTAINERS_DIR (as the Rust SDK reads it).
_get_pebble = ops.model._ModelBackend.get_pebble


def _local_pebble(self, socket_path):
    local = os.environ.get("CHARM_CONTAINERS_DIR")
    if local:
        socket_path = socket_path.replace("/charm/containers", local, 1)
    return _get_pebble(self, socket_path)


ops.model._ModelBackend.get_pebble = _local_pebble

# Posts a custom notice to the Pebble socket Juju names in PEBBLE_SOCKET, then idles.
NOTIFY = """#!/bin/sh
python3 - <<'PY'
import json, os, socket
body = json.dumps({"action": "add", "type": "custom", "key": "example.com/workload/ready",
                   "data": {"from": "workload"}}).encode()
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["PEBBLE_SOCKET"])
s.sendall(b"POST /v1/notices HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
print(s.recv(4096).decode())
PY
exec sleep 3600
"""


class OpsNoticeCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.workload_pebble_ready, self._on_ready)
        framework.observe(self.on.workload_pebble_custom_notice, self._on_notice)

    def _on_ready(self, event):
        container = event.workload
        container.push("/usr/local/bin/notify", NOTIFY, make_dirs=True, permissions=0o755)
        layer = {
            "services": {
                "notify": {
                    "override": "replace",
                    "command": "/usr/local/bin/notify",
                    "startup": "enabled",
                    "user": "nobody",
                }
            }
        }
        container.add_layer("notify", layer, combine=True)
        container.replan()
        self.unit.status = ops.WaitingStatus("waiting for the workload's notice")

    def _on_notice(self, event):
        notice = event.notice
        self.unit.status = ops.ActiveStatus(
            f"notice {notice.id} {getattr(notice.type, 'value', notice.type)} {notice.key}"
            f" x{notice.occurrences} from {notice.last_data.get('from')}"
        )


if __name__ == "__main__":
    ops.main(OpsNoticeCharm)
