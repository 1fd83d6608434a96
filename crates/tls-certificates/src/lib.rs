//! TLS material for both charms' `certificates` relation: private keys,
//! certificate signing requests, the relation's wire format (the
//! `tls-certificates` v4 protocol as `charmlibs-interfaces-tls-certificates`
//! speaks it), and the pure decision of what to do with what the provider
//! published. OpenSSL does the cryptography; nothing here talks to Juju, and
//! each charm names its units' subjects itself.

use base64::Engine as _;
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509Req, X509ReqBuilder, X509};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// Requirer unit bag: the JSON list of this unit's requests.
pub const CSRS_KEY: &str = "certificate_signing_requests";
/// Provider application bag: the JSON list of issued certificates.
pub const CERTIFICATES_KEY: &str = "certificates";
/// Provider application bag: the JSON list of refused requests.
pub const ERRORS_KEY: &str = "request_errors";

/// The longest common name X.509 allows.
pub const MAX_CN: usize = 64;

/// What went wrong with TLS material. The messages never quote a key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "invalid private key: expected an unencrypted RSA (2048 bits or more) or EC private key \
         in PEM, or the base64 of one"
    )]
    InvalidKey,
    #[error("invalid {0}: not a PEM {0}")]
    InvalidPem(&'static str),
    #[error("OpenSSL: {0}")]
    Crypto(#[from] ErrorStack),
}

/// A private key as PKCS#8 PEM. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(String);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    /// A new ECDSA P-256 key. ECDSA signatures are randomised, so every CSR made
    /// from the key differs, and a renewal is always a new request to the provider.
    pub fn generate() -> Result<PrivateKey, TlsError> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        Ok(PrivateKey(pem_text(&key.private_key_to_pem_pkcs8()?)))
    }

    /// Reads a key given by a user: PEM (PKCS#8, PKCS#1 RSA or SEC1 EC), or the
    /// base64 of such a PEM. RSA keys need 2048 bits or more; encrypted keys are
    /// refused.
    pub fn parse(input: &str) -> Result<PrivateKey, TlsError> {
        let input = input.trim();
        let pem: Vec<u8> = if input.starts_with("-----BEGIN") {
            input.as_bytes().to_vec()
        } else {
            let compact: String = input.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| TlsError::InvalidKey)?
        };
        // An empty passphrase: an encrypted key fails instead of prompting.
        let key =
            PKey::private_key_from_pem_passphrase(&pem, b"").map_err(|_| TlsError::InvalidKey)?;
        let sound = match key.id() {
            Id::RSA => {
                let rsa = key.rsa().map_err(|_| TlsError::InvalidKey)?;
                rsa.size() * 8 >= 2048 && rsa.check_key().unwrap_or(false)
            }
            Id::EC => key.ec_key().is_ok_and(|ec| ec.check_key().is_ok()),
            _ => false,
        };
        if !sound {
            return Err(TlsError::InvalidKey);
        }
        Ok(PrivateKey(pem_text(&key.private_key_to_pem_pkcs8()?)))
    }

    /// The PEM text.
    pub fn pem(&self) -> &str {
        &self.0
    }

    fn pkey(&self) -> Result<PKey<Private>, TlsError> {
        Ok(PKey::private_key_from_pem(self.0.as_bytes())?)
    }
}

fn pem_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// What a CSR asks to be certified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Subject {
    /// A subject named `common_name` (cut to the 64 characters X.509 allows)
    /// for `dns` names and a unit's `address`: an IP SAN when it is an IP
    /// address, else one more DNS name. The DNS names are sorted, without
    /// duplicates.
    pub fn new(common_name: &str, mut dns: Vec<String>, address: &str) -> Subject {
        let mut ips = Vec::new();
        match address.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) if !address.is_empty() => dns.push(address.to_string()),
            Err(_) => {}
        }
        dns.sort();
        dns.dedup();
        Subject {
            common_name: common_name.chars().take(MAX_CN).collect(),
            dns,
            ips,
        }
    }
}

/// A CSR for `subject`, signed by `key`, as PEM without a trailing newline
/// (the form the library compares).
pub fn csr(key: &PrivateKey, subject: &Subject) -> Result<String, TlsError> {
    let pkey = key.pkey()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, &subject.common_name)?;
    let name = name.build();
    let mut req = X509ReqBuilder::new()?;
    req.set_subject_name(&name)?;
    req.set_pubkey(&pkey)?;
    let mut san = SubjectAlternativeName::new();
    for d in &subject.dns {
        san.dns(d);
    }
    for ip in &subject.ips {
        san.ip(&ip.to_string());
    }
    let mut extensions = Stack::new()?;
    extensions.push(san.build(&req.x509v3_context(None))?)?;
    req.add_extensions(&extensions)?;
    let digest = match pkey.ec_key() {
        Ok(ec) if ec.group().curve_name() == Some(Nid::SECP384R1) => MessageDigest::sha384(),
        _ => MessageDigest::sha256(),
    };
    req.sign(&pkey, digest)?;
    Ok(pem_text(&req.build().to_pem()?))
}

/// Whether two PEM texts hold the same object (whitespace and line lengths
/// aside).
pub fn same_pem(a: &str, b: &str) -> bool {
    let body = |s: &str| -> String { s.split_whitespace().collect() };
    body(a) == body(b)
}

/// Whether the certificate certifies `key`'s public key.
pub fn certificate_matches_key(certificate: &str, key: &PrivateKey) -> bool {
    let (Ok(cert), Ok(pkey)) = (X509::from_pem(certificate.as_bytes()), key.pkey()) else {
        return false;
    };
    cert.public_key()
        .is_ok_and(|public| public.public_eq(&pkey))
}

/// Whether the CSR was made with `key`.
pub fn csr_matches_key(csr: &str, key: &PrivateKey) -> bool {
    let (Ok(req), Ok(pkey)) = (X509Req::from_pem(csr.as_bytes()), key.pkey()) else {
        return false;
    };
    req.public_key().is_ok_and(|public| public.public_eq(&pkey))
}

/// When a certificate is valid, in seconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// The validity period of a PEM certificate.
pub fn validity(certificate: &str) -> Result<Validity, TlsError> {
    let cert =
        X509::from_pem(certificate.as_bytes()).map_err(|_| TlsError::InvalidPem("certificate"))?;
    let epoch = openssl::asn1::Asn1Time::from_unix(0)?;
    let secs = |t: &openssl::asn1::Asn1TimeRef| -> Result<i64, ErrorStack> {
        let d = epoch.diff(t)?;
        Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
    };
    Ok(Validity {
        not_before: secs(cert.not_before())?,
        not_after: secs(cert.not_after())?,
    })
}

/// The fraction of the validity period after which a certificate is renewed
/// (the library's default `renewal_relative_time`).
const RENEW_AT: f64 = 0.9;

/// Whether a certificate should be renewed at `now` (seconds since the epoch).
pub fn renewal_due(v: Validity, now: i64) -> bool {
    let period = (v.not_after - v.not_before).max(0) as f64;
    now as f64 >= v.not_before as f64 + period * RENEW_AT
}

/// One request in the requirer's unit bag (`certificate_signing_requests`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CsrEntry {
    pub certificate_signing_request: String,
    pub ca: bool,
}

/// The requirer unit bag's value for one request.
pub fn csr_list(csr: &str) -> String {
    serde_json::to_string(&[CsrEntry {
        certificate_signing_request: csr.trim().to_string(),
        ca: false,
    }])
    .expect("a list of strings and booleans")
}

/// One certificate in the provider's application bag (`certificates`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct ProviderCertificate {
    pub ca: String,
    pub certificate_signing_request: String,
    pub certificate: String,
    #[serde(default)]
    pub chain: Option<Vec<String>>,
    #[serde(default)]
    pub revoked: Option<bool>,
}

/// One refused request in the provider's application bag (`request_errors`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct RequestError {
    pub csr: String,
    pub error: RequestErrorDetail,
}

/// Why the provider refused a request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct RequestErrorDetail {
    pub code: i64,
    pub name: String,
    pub message: String,
}

/// Reads a JSON list the provider published under `key`; a missing key is an
/// empty list.
pub fn provider_list<T: serde::de::DeserializeOwned>(
    bag: &BTreeMap<String, String>,
    key: &str,
) -> Result<Vec<T>, String> {
    match bag.get(key) {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_str(raw)
            .map_err(|e| format!("the provider's {key} is not what the protocol says: {e}")),
    }
}

/// The certificate a unit has installed, with what it was issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub certificate: String,
    pub ca: String,
    /// The chain, leaf first, joined by newlines; empty without one.
    pub chain: String,
}

impl Installed {
    /// What clients and `ca.pem` get: the chain when there is one, else the CA.
    pub fn ca_bundle(&self) -> &str {
        if self.chain.is_empty() {
            &self.ca
        } else {
            &self.chain
        }
    }
}

/// What to do with the provider's answer to our request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: no answer yet, or the installed certificate is current.
    Wait,
    /// Install this newly issued certificate.
    Install(Installed),
    /// Ask again with a new CSR: the certificate was revoked, has expired or is
    /// due for renewal.
    Renew(&'static str),
    /// The provider refused the request.
    Refused(String),
}

/// Decides from our CSR and key, what is installed, what the provider published,
/// and the time. A certificate counts only if it was issued for our CSR and
/// certifies our key.
pub fn decide(
    csr: &str,
    key: &PrivateKey,
    installed: Option<&Installed>,
    issued: &[ProviderCertificate],
    errors: &[RequestError],
    now: i64,
) -> Decision {
    let ours = issued.iter().find(|c| {
        same_pem(&c.certificate_signing_request, csr)
            && certificate_matches_key(&c.certificate, key)
    });
    let Some(cert) = ours else {
        if let Some(e) = errors.iter().find(|e| same_pem(&e.csr, csr)) {
            return Decision::Refused(format!(
                "the certificate request was refused ({}): {}",
                e.error.name, e.error.message
            ));
        }
        return match installed.map(|i| validity(&i.certificate)) {
            Some(Ok(v)) if now >= v.not_after => Decision::Renew("the certificate has expired"),
            _ => Decision::Wait,
        };
    };
    if cert.revoked == Some(true) {
        return Decision::Renew("the provider revoked the certificate");
    }
    let Ok(v) = validity(&cert.certificate) else {
        return Decision::Wait;
    };
    if now >= v.not_after {
        return Decision::Renew("the certificate has expired");
    }
    let new = Installed {
        certificate: cert.certificate.trim().to_string(),
        ca: cert.ca.trim().to_string(),
        chain: cert
            .chain
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| c.trim())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if installed != Some(&new) {
        Decision::Install(new)
    } else if renewal_due(v, now) {
        Decision::Renew("the certificate is due for renewal")
    } else {
        Decision::Wait
    }
}

/// The key, certificate and CA bundle written into the container.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub key: String,
    pub cert: String,
    pub ca: String,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

/// The CA bundle clients are told to trust, from the bundle each unit
/// serves with (`None` or empty: that unit serves no TLS): the distinct
/// bundles joined once every unit serves TLS, else `None` (no units: `None`).
pub fn served_ca(units: &[Option<&str>]) -> Option<String> {
    let mut cas: Vec<&str> = Vec::new();
    for ca in units {
        match ca.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) if !cas.contains(&c) => cas.push(c),
            Some(_) => {}
            None => return None,
        }
    }
    (!cas.is_empty()).then(|| cas.join("\n"))
}

/// Keys of a unit's TLS secret (the reference charms'): the private key, the
/// CSR, and the certificate installed with its CA and chain.
pub const SECRET_KEY: &str = "key";
pub const SECRET_CSR: &str = "csr";
pub const SECRET_CERT: &str = "cert";
pub const SECRET_CA: &str = "cauth";
pub const SECRET_CHAIN: &str = "chain";

/// A unit's TLS state as its unit secret holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitTls {
    pub key: Option<PrivateKey>,
    pub csr: Option<String>,
    pub installed: Option<Installed>,
}

impl UnitTls {
    /// Reads the secret's fields through `get` (empty values count as none;
    /// a key that no longer parses counts as none).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> UnitTls {
        let text = |k: &str| get(k).filter(|v| !v.is_empty());
        let installed = match (text(SECRET_CERT), text(SECRET_CA)) {
            (Some(certificate), Some(ca)) => Some(Installed {
                certificate,
                ca,
                chain: text(SECRET_CHAIN).unwrap_or_default(),
            }),
            _ => None,
        };
        UnitTls {
            key: text(SECRET_KEY).and_then(|k| PrivateKey::parse(&k).ok()),
            csr: text(SECRET_CSR),
            installed,
        }
    }

    /// The secret's fields.
    pub fn fields(&self) -> BTreeMap<&'static str, String> {
        let mut c = BTreeMap::new();
        if let Some(k) = &self.key {
            c.insert(SECRET_KEY, k.pem().to_string());
        }
        if let Some(csr) = &self.csr {
            c.insert(SECRET_CSR, csr.clone());
        }
        if let Some(i) = &self.installed {
            c.insert(SECRET_CERT, i.certificate.clone());
            c.insert(SECRET_CA, i.ca.clone());
            if !i.chain.is_empty() {
                c.insert(SECRET_CHAIN, i.chain.clone());
            }
        }
        c
    }

    /// The files to write, when a certificate for the key is installed.
    pub fn files(&self) -> Option<TlsFiles> {
        let (Some(key), Some(i)) = (&self.key, &self.installed) else {
            return None;
        };
        Some(TlsFiles {
            key: key.pem().to_string(),
            cert: i.certificate.clone(),
            ca: i.ca_bundle().to_string(),
        })
    }
}

/// What a requirer step did besides updating the unit's [`UnitTls`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to report.
    Quiet,
    /// A new CSR asks for a new certificate, for this reason.
    Renewing(&'static str),
    /// The request was refused, or the provider's bag could not be read: why,
    /// for a waiting status.
    Problem(String),
}

impl UnitTls {
    /// One step of a unit's requirer, the same in both charms: a key
    /// (generated when there is none) and a CSR for it (made by `new_csr`
    /// when missing or for another key), then the provider's application bag
    /// `remote` acted on at `now` ([`decide`]): a certificate issued for the
    /// CSR installed, a renewal asked for with a new CSR, a refusal reported.
    pub fn advance<E: From<TlsError>>(
        &mut self,
        remote: &BTreeMap<String, String>,
        now: i64,
        new_csr: &mut dyn FnMut(&PrivateKey) -> Result<String, E>,
    ) -> Result<Step, E> {
        let key = match &self.key {
            Some(k) => k.clone(),
            None => PrivateKey::generate()?,
        };
        self.key = Some(key.clone());
        if !self.csr.as_ref().is_some_and(|c| csr_matches_key(c, &key)) {
            self.csr = Some(new_csr(&key)?);
        }
        let issued = provider_list::<ProviderCertificate>(remote, CERTIFICATES_KEY);
        let errors = provider_list::<RequestError>(remote, ERRORS_KEY);
        let (issued, errors) = match (issued, errors) {
            (Ok(issued), Ok(errors)) => (issued, errors),
            (Err(why), _) | (_, Err(why)) => return Ok(Step::Problem(why)),
        };
        let csr = self.csr.clone().unwrap_or_default();
        Ok(
            match decide(&csr, &key, self.installed.as_ref(), &issued, &errors, now) {
                Decision::Wait => Step::Quiet,
                Decision::Install(installed) => {
                    self.installed = Some(installed);
                    Step::Quiet
                }
                Decision::Renew(why) => {
                    self.csr = Some(new_csr(&key)?);
                    Step::Renewing(why)
                }
                Decision::Refused(why) => Step::Problem(why),
            },
        )
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A certificate authority for tests (feature `testing`): it signs CSRs the way
/// a provider does. A failure here is a broken test, so it panics.
#[cfg(feature = "testing")]
#[allow(
    clippy::unwrap_used,
    reason = "test support: a failure is a broken test"
)]
pub mod testing {
    use super::*;
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::x509::extension::BasicConstraints;
    use openssl::x509::X509Builder;

    /// A self-signed CA.
    pub struct TestCa {
        key: PKey<Private>,
        cert: X509,
        serial: u32,
    }

    impl TestCa {
        /// A new CA named `name`, valid for a year.
        pub fn new(name: &str) -> TestCa {
            let key = PKey::from_ec_key(
                EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
            )
            .unwrap();
            let mut subject = X509NameBuilder::new().unwrap();
            subject.append_entry_by_nid(Nid::COMMONNAME, name).unwrap();
            let subject = subject.build();
            let mut b = X509Builder::new().unwrap();
            b.set_version(2).unwrap();
            b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(1).unwrap()).unwrap())
                .unwrap();
            b.set_subject_name(&subject).unwrap();
            b.set_issuer_name(&subject).unwrap();
            b.set_pubkey(&key).unwrap();
            b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
                .unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.sign(&key, MessageDigest::sha256()).unwrap();
            TestCa {
                key,
                cert: b.build(),
                serial: 1,
            }
        }

        /// The CA certificate as PEM.
        pub fn pem(&self) -> String {
            pem_text(&self.cert.to_pem().unwrap())
        }

        /// Signs a CSR for the period `[from, until]` (seconds since the epoch),
        /// copying its subject and extensions, as a provider does.
        pub fn sign(&mut self, csr: &str, from: i64, until: i64) -> String {
            let req = X509Req::from_pem(csr.as_bytes()).unwrap();
            self.serial += 1;
            let mut b = X509Builder::new().unwrap();
            b.set_version(2).unwrap();
            b.set_serial_number(
                &Asn1Integer::from_bn(&BigNum::from_u32(self.serial).unwrap()).unwrap(),
            )
            .unwrap();
            b.set_subject_name(req.subject_name()).unwrap();
            b.set_issuer_name(self.cert.subject_name()).unwrap();
            b.set_pubkey(&req.public_key().unwrap()).unwrap();
            b.set_not_before(&Asn1Time::from_unix(from).unwrap())
                .unwrap();
            b.set_not_after(&Asn1Time::from_unix(until).unwrap())
                .unwrap();
            for ext in req.extensions().unwrap() {
                b.append_extension(ext).unwrap();
            }
            b.sign(&self.key, MessageDigest::sha256()).unwrap();
            pem_text(&b.build().to_pem().unwrap())
        }

        /// Signs a CSR valid from an hour ago for `days` days.
        pub fn issue(&mut self, csr: &str, days: i64) -> String {
            let now = now();
            self.sign(csr, now - 3600, now + days * 86_400)
        }

        /// A TLS acceptor serving a new key with a certificate for `subject`
        /// that this CA signed, for servers in tests.
        pub fn acceptor(&mut self, subject: &Subject) -> openssl::ssl::SslAcceptor {
            use openssl::ssl::{SslAcceptor, SslMethod};
            let key = PrivateKey::generate().unwrap();
            let cert = self.issue(&csr(&key, subject).unwrap(), 30);
            let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
            acceptor
                .set_private_key(&PKey::private_key_from_pem(key.pem().as_bytes()).unwrap())
                .unwrap();
            acceptor
                .set_certificate(&X509::from_pem(cert.as_bytes()).unwrap())
                .unwrap();
            acceptor.build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestCa;
    use super::*;

    fn subject() -> Subject {
        Subject::new(
            "pgbouncer-k8s-1.pgbouncer-k8s-endpoints",
            vec!["pgbouncer-k8s-1".into(), "a".into(), "a".into()],
            "10.1.2.3",
        )
    }

    #[test]
    fn subjects_split_the_address_and_cut_the_common_name() {
        let s = subject();
        assert_eq!(s.common_name, "pgbouncer-k8s-1.pgbouncer-k8s-endpoints");
        assert_eq!(s.dns, ["a", "pgbouncer-k8s-1"]);
        assert_eq!(s.ips, ["10.1.2.3".parse::<IpAddr>().unwrap()]);
        let named = Subject::new("a", vec![], "a-0.example");
        assert_eq!(named.dns, ["a-0.example"]);
        assert!(named.ips.is_empty());
        assert!(Subject::new("a", vec![], "").dns.is_empty());
        assert_eq!(
            Subject::new(&"x".repeat(70), vec![], "").common_name.len(),
            MAX_CN
        );
    }

    #[test]
    fn keys_are_read_in_every_usual_form_and_bad_ones_are_refused() {
        let generated = PrivateKey::generate().unwrap();
        assert!(generated.pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!format!("{generated:?}").contains("BEGIN"));
        assert_eq!(PrivateKey::parse(generated.pem()).unwrap(), generated);
        let b64 = base64::engine::general_purpose::STANDARD.encode(generated.pem());
        assert_eq!(PrivateKey::parse(&b64).unwrap(), generated);

        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pkcs1 = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
        assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
        let parsed = PrivateKey::parse(&pkcs1).unwrap();
        assert!(parsed.pem().starts_with("-----BEGIN PRIVATE KEY-----"));

        let small = openssl::rsa::Rsa::generate(1024).unwrap();
        let small = String::from_utf8(small.private_key_to_pem().unwrap()).unwrap();
        let encrypted = String::from_utf8(
            rsa.private_key_to_pem_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"pw")
                .unwrap(),
        )
        .unwrap();
        for bad in [
            "",
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            small.as_str(),
            encrypted.as_str(),
        ] {
            let e = PrivateKey::parse(bad).unwrap_err();
            assert!(matches!(e, TlsError::InvalidKey), "{e}");
        }
    }

    #[test]
    fn csrs_carry_the_subject_and_match_their_key_and_certificate() {
        let key = PrivateKey::generate().unwrap();
        let other = PrivateKey::generate().unwrap();
        let csr = csr(&key, &subject()).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(!csr.ends_with('\n'));
        assert!(csr_matches_key(&csr, &key) && !csr_matches_key(&csr, &other));
        let again = super::csr(&key, &subject()).unwrap();
        assert!(!same_pem(&csr, &again), "ECDSA makes every CSR new");
        assert!(same_pem(&csr, &format!("{}\n", csr.replace('\n', "\r\n"))));

        let mut ca = TestCa::new("test-ca");
        let cert = ca.issue(&csr, 90);
        assert!(certificate_matches_key(&cert, &key));
        assert!(!certificate_matches_key(&cert, &other));
        let text =
            String::from_utf8(X509::from_pem(cert.as_bytes()).unwrap().to_text().unwrap()).unwrap();
        assert!(
            text.contains("CN=pgbouncer-k8s-1.pgbouncer-k8s-endpoints"),
            "{text}"
        );
        assert!(text.contains("DNS:pgbouncer-k8s-1") && text.contains("IP Address:10.1.2.3"));
        let v = validity(&cert).unwrap();
        assert!(v.not_after - v.not_before > 89 * 86_400);
    }

    #[test]
    fn renewal_is_due_after_nine_tenths_of_the_period() {
        let v = Validity {
            not_before: 0,
            not_after: 1000,
        };
        assert!(!renewal_due(v, 899));
        assert!(renewal_due(v, 900));
    }

    #[test]
    fn decisions_follow_the_provider_data() {
        let key = PrivateKey::generate().unwrap();
        let csr = csr(&key, &subject()).unwrap();
        let mut ca = TestCa::new("ca");
        let now = now();
        let entry = |cert: &str| ProviderCertificate {
            ca: ca_pem(),
            certificate_signing_request: csr.clone(),
            certificate: cert.to_string(),
            chain: Some(vec![cert.to_string(), ca_pem()]),
            revoked: None,
        };
        fn ca_pem() -> String {
            "CA".into()
        }
        assert_eq!(decide(&csr, &key, None, &[], &[], now), Decision::Wait);
        let cert = ca.issue(&csr, 90);
        let Decision::Install(installed) = decide(&csr, &key, None, &[entry(&cert)], &[], now)
        else {
            panic!("a fresh certificate is installed")
        };
        assert_eq!(installed.ca_bundle(), format!("{cert}\nCA"));
        assert_eq!(
            decide(&csr, &key, Some(&installed), &[entry(&cert)], &[], now),
            Decision::Wait
        );
        let mut revoked = entry(&cert);
        revoked.revoked = Some(true);
        assert!(matches!(
            decide(&csr, &key, Some(&installed), &[revoked], &[], now),
            Decision::Renew(_)
        ));
        assert!(matches!(
            decide(
                &csr,
                &key,
                Some(&installed),
                &[entry(&cert)],
                &[],
                now + 82 * 86_400
            ),
            Decision::Renew("the certificate is due for renewal")
        ));
        let expired = ca.sign(&csr, now - 7200, now - 3600);
        assert!(matches!(
            decide(&csr, &key, None, &[entry(&expired)], &[], now),
            Decision::Renew("the certificate has expired")
        ));
        let stale = Installed {
            certificate: expired.clone(),
            ca: "CA".into(),
            chain: String::new(),
        };
        assert!(matches!(
            decide(&csr, &key, Some(&stale), &[], &[], now),
            Decision::Renew("the certificate has expired")
        ));
        let foreign = PrivateKey::generate().unwrap();
        let foreign_cert = ca.issue(&super::csr(&foreign, &subject()).unwrap(), 90);
        assert_eq!(
            decide(&csr, &key, None, &[entry(&foreign_cert)], &[], now),
            Decision::Wait,
            "a certificate for another key is ignored"
        );
        let refused = RequestError {
            csr: csr.clone(),
            error: RequestErrorDetail {
                code: 102,
                name: "DOMAIN_NOT_ALLOWED".into(),
                message: "domain not allowed".into(),
            },
        };
        assert_eq!(
            decide(&csr, &key, None, &[], &[refused], now),
            Decision::Refused(
                "the certificate request was refused (DOMAIN_NOT_ALLOWED): domain not allowed"
                    .into()
            )
        );
    }

    #[test]
    fn clients_trust_the_units_cas_only_when_every_unit_serves_tls() {
        assert_eq!(served_ca(&[]), None);
        assert_eq!(served_ca(&[Some("A"), None]), None);
        assert_eq!(served_ca(&[Some("A"), Some("")]), None);
        assert_eq!(
            served_ca(&[Some("A\n"), Some("A"), Some("B")]).as_deref(),
            Some("A\nB")
        );
    }

    #[test]
    fn the_unit_secret_round_trips() {
        let key = PrivateKey::generate().unwrap();
        let tls = UnitTls {
            key: Some(key),
            csr: Some("CSR".into()),
            installed: Some(Installed {
                certificate: "CERT".into(),
                ca: "CA".into(),
                chain: "CERT\nCA".into(),
            }),
        };
        let fields = tls.fields();
        assert_eq!(fields[SECRET_CA], "CA");
        let back = UnitTls::read(|k| fields.get(k).cloned());
        assert_eq!(back, tls);
        assert_eq!(back.files().unwrap().ca, "CERT\nCA");
        let keyless = UnitTls::read(|k| (k != SECRET_KEY).then(|| fields[k].clone()));
        assert!(keyless.files().is_none());
        assert_eq!(UnitTls::read(|_| Some(String::new())), UnitTls::default());
    }

    #[test]
    fn the_wire_format_is_the_libraries() {
        let list =
            csr_list("-----BEGIN CERTIFICATE REQUEST-----\nX\n-----END CERTIFICATE REQUEST-----\n");
        assert_eq!(
            list,
            r#"[{"certificate_signing_request":"-----BEGIN CERTIFICATE REQUEST-----\nX\n-----END CERTIFICATE REQUEST-----","ca":false}]"#
        );
        let mut bag = BTreeMap::new();
        bag.insert(
            CERTIFICATES_KEY.into(),
            r#"[{"ca": "C", "certificate_signing_request": "R", "certificate": "X", "chain": ["X", "C"]}]"#.into(),
        );
        let certs: Vec<ProviderCertificate> = provider_list(&bag, CERTIFICATES_KEY).unwrap();
        assert_eq!(
            certs[0].chain.as_deref(),
            Some(&["X".to_string(), "C".to_string()][..])
        );
        assert_eq!(certs[0].revoked, None);
        assert!(provider_list::<RequestError>(&bag, ERRORS_KEY)
            .unwrap()
            .is_empty());
        bag.insert(CERTIFICATES_KEY.into(), "{".into());
        assert!(provider_list::<ProviderCertificate>(&bag, CERTIFICATES_KEY).is_err());
    }
}
