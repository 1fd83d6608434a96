#!/usr/bin/env python3
"""Hands out S3 parameters with the published data-platform S3 library (v0),
as the s3-integrator does: on a requirer's request, and again to every
relation when its options change. The tests set the options; an empty
option is not written (the s3-integrator deletes the key).
"""

import base64
import re

import ops
from charms.data_platform_libs.v0.s3 import S3Provider

RELATION = "s3-credentials"


class S3ProviderCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.s3 = S3Provider(self, RELATION)
        framework.observe(self.s3.on.credentials_requested, self._requested)
        framework.observe(self.on.config_changed, self._config_changed)
        framework.observe(self.on.start, self._start)

    def _start(self, _event):
        self.unit.status = ops.ActiveStatus()

    def _values(self, requested_bucket):
        config = self.model.config
        values = {}
        for key in ("endpoint", "region", "path", "s3-uri-style", "access-key", "secret-key"):
            if config.get(key):
                values[key] = config[key]
        bucket = config.get("bucket") or requested_bucket
        if bucket:
            values["bucket"] = bucket
        if config.get("tls-ca-chain"):
            bundle = base64.b64decode(config["tls-ca-chain"]).decode()
            values["tls-ca-chain"] = re.findall(
                r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", bundle, re.S
            )
        if config.get("delete-older-than-days"):
            values["delete-older-than-days"] = str(config["delete-older-than-days"])
        return values

    def _publish(self, relation, requested_bucket):
        self.s3.update_connection_info(relation.id, self._values(requested_bucket))

    def _requested(self, event):
        if self.unit.is_leader():
            self._publish(event.relation, event.bucket)

    def _config_changed(self, _event):
        if not self.unit.is_leader():
            return
        for relation in self.model.relations[RELATION]:
            requested = relation.data[relation.app].get("bucket")
            self._publish(relation, requested)


if __name__ == "__main__":
    ops.main(S3ProviderCharm)
