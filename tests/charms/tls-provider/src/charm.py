#!/usr/bin/env python3
"""A certificate authority for tests, built like Canonical's self-signed-certificates.

The leader generates a CA once and keeps it with its private key in an
application secret (never in a databag); every outstanding certificate request
on the `certificates` relations is signed with the library's own helpers and
answered through `TLSCertificatesProvidesV4`, the chain leaf first.
"""

import logging
from datetime import timedelta

import ops
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
    ProviderCertificate,
    TLSCertificatesProvidesV4,
)

logger = logging.getLogger(__name__)

CA_LABEL = "ca-certificates"


class TlsProviderCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.certificates = TLSCertificatesProvidesV4(self, "certificates")
        for event in (
            self.on.config_changed,
            self.on.leader_elected,
            self.on.update_status,
            self.on.secret_expired,
            self.on.certificates_relation_changed,
        ):
            framework.observe(event, self._configure)
        framework.observe(self.on.get_ca_certificate_action, self._get_ca_certificate)
        framework.observe(self.on.rotate_private_key_action, self._rotate_private_key)
        framework.observe(self.on.secret_remove, self._secret_remove)
        framework.observe(self.on.collect_unit_status, self._status)

    def _ca(self) -> dict[str, str] | None:
        try:
            return self.model.get_secret(label=CA_LABEL).get_content(refresh=True)
        except ops.SecretNotFoundError:
            return None

    def _configure(self, _event):
        if not self.unit.is_leader():
            return
        ca = self._ca()
        if ca is None:
            ca = self._new_ca()
            self.app.add_secret(ca, label=CA_LABEL)
        ca_certificate = Certificate.from_string(ca["ca-certificate"])
        ca_key = PrivateKey.from_string(ca["private-key"])
        validity = timedelta(days=self.config["certificate-validity"])
        for request in self.certificates.get_outstanding_certificate_requests():
            certificate = Certificate.generate(
                csr=request.certificate_signing_request,
                ca=ca_certificate,
                ca_private_key=ca_key,
                validity=validity,
                is_ca=request.is_ca,
            )
            self.certificates.set_relation_certificate(
                ProviderCertificate(
                    relation_id=request.relation_id,
                    certificate=certificate,
                    certificate_signing_request=request.certificate_signing_request,
                    ca=ca_certificate,
                    chain=[certificate, ca_certificate],
                )
            )
            logger.info(
                "issued a certificate for %s on relation %d",
                request.certificate_signing_request.common_name,
                request.relation_id,
            )

    def _new_ca(self) -> dict[str, str]:
        key = PrivateKey.generate()
        certificate = Certificate.generate_self_signed_ca(
            CertificateRequestAttributes(common_name=self.config["ca-common-name"], is_ca=True),
            key,
            timedelta(days=self.config["root-ca-validity"]),
        )
        logger.info("generated the CA %s", self.config["ca-common-name"])
        return {"private-key": str(key), "ca-certificate": str(certificate)}

    def _rotate_private_key(self, event: ops.ActionEvent):
        if not self.unit.is_leader():
            event.fail("only the leader rotates the CA")
            return
        self.certificates.revoke_all_certificates()
        ca = self._new_ca()
        try:
            self.model.get_secret(label=CA_LABEL).set_content(ca)
        except ops.SecretNotFoundError:
            self.app.add_secret(ca, label=CA_LABEL)
        event.set_results({"result": "a new CA; every certificate issued so far is revoked"})

    def _secret_remove(self, event: ops.SecretRemoveEvent):
        # A revision of the CA secret nobody tracks any more (after a rotation).
        event.remove_revision()

    def _get_ca_certificate(self, event: ops.ActionEvent):
        ca = self._ca()
        if ca is None:
            event.fail("the CA is not generated yet")
            return
        event.set_results({"ca-certificate": ca["ca-certificate"]})

    def _status(self, event: ops.CollectStatusEvent):
        if not self.unit.is_leader():
            event.add_status(ops.BlockedStatus("scaling is not implemented"))
        elif self._ca() is None:
            event.add_status(ops.WaitingStatus("no CA yet"))
        else:
            event.add_status(ops.ActiveStatus())


if __name__ == "__main__":
    ops.main(TlsProviderCharm)
