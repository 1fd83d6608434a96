//! The API server's certificate: a CA made when the server starts (its key
//! never leaves memory) and a server certificate it signs for the node's
//! address and `kubernetes.default.svc`. Service accounts get the CA.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Name, X509};

/// The server's key and certificate, and the CA's certificate (PEM).
pub struct ServerTls {
    pub key: PKey<Private>,
    pub cert: X509,
    pub ca_pem: Vec<u8>,
}

fn key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn name(common: &str) -> Result<X509Name, ErrorStack> {
    let mut n = X509Name::builder()?;
    n.append_entry_by_nid(Nid::COMMONNAME, common)?;
    Ok(n.build())
}

fn serial() -> Result<openssl::asn1::Asn1Integer, ErrorStack> {
    let mut n = BigNum::new()?;
    n.rand(127, MsbOption::MAYBE_ZERO, false)?;
    n.to_asn1_integer()
}

/// A new CA and a server certificate for `address`, both valid a year.
pub fn issue(address: &str) -> Result<ServerTls, ErrorStack> {
    let ca_key = key()?;
    let ca_name = name("local-model kubernetes CA")?;
    let mut ca = X509::builder()?;
    ca.set_version(2)?;
    let ca_serial = serial()?;
    ca.set_serial_number(&ca_serial)?;
    ca.set_subject_name(&ca_name)?;
    ca.set_issuer_name(&ca_name)?;
    ca.set_pubkey(&ca_key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(365)?);
    ca.set_not_before(&from)?;
    ca.set_not_after(&until)?;
    ca.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    ca.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    ca.sign(&ca_key, MessageDigest::sha256())?;
    let ca = ca.build();

    let server_key = key()?;
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    let cert_serial = serial()?;
    cert.set_serial_number(&cert_serial)?;
    let subject = name("kube-apiserver")?;
    cert.set_subject_name(&subject)?;
    cert.set_issuer_name(ca.subject_name())?;
    cert.set_pubkey(&server_key)?;
    cert.set_not_before(&from)?;
    cert.set_not_after(&until)?;
    let san = SubjectAlternativeName::new()
        .ip(address)
        .dns("kubernetes.default.svc")
        .dns("kubernetes.default.svc.cluster.local")
        .build(&cert.x509v3_context(Some(&ca), None))?;
    cert.append_extension(san)?;
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    cert.sign(&ca_key, MessageDigest::sha256())?;
    Ok(ServerTls {
        key: server_key,
        cert: cert.build(),
        ca_pem: ca.to_pem()?,
    })
}
