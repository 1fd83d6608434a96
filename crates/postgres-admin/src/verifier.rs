//! Password verifiers computed locally, so the server never sees a plaintext
//! password.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};

/// PostgreSQL's default `scram_iterations`.
pub const DEFAULT_ITERATIONS: NonZeroU32 = NonZeroU32::new(4096).unwrap();

/// A SCRAM-SHA-256 verifier (RFC 5802, RFC 7677) in PostgreSQL's format:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
///
/// The password is SASLprep-normalised first where that succeeds, as
/// PostgreSQL and its clients do.
pub fn scram_sha_256(password: &str, salt: &[u8; 16], iterations: NonZeroU32) -> String {
    let prepared = stringprep::saslprep(password).unwrap_or(password.into());
    let salted = pbkdf2(prepared.as_bytes(), salt, iterations.get());
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// A SCRAM-SHA-256 verifier with a random salt and the default iterations.
pub fn scram_sha_256_random_salt(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    scram_sha_256(password, &salt, DEFAULT_ITERATIONS)
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block: RFC 5802's `Hi()`.
fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let keyed = Hmac::<Sha256>::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut first = keyed.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut block: [u8; 32] = first.finalize().into_bytes().into();
    let mut result = block;
    for _ in 1..iterations {
        let mut next = keyed.clone();
        next.update(&block);
        block = next.finalize().into_bytes().into();
        result.iter_mut().zip(block).for_each(|(r, b)| *r ^= b);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits postgres-protocol's verifier to reuse its random salt.
    fn salt_of(verifier: &str) -> [u8; 16] {
        let salt = verifier.split(['$', ':']).nth(2).unwrap();
        STANDARD.decode(salt).unwrap().try_into().unwrap()
    }

    #[test]
    fn scram_matches_postgres_protocol_for_the_same_salt() {
        for password in ["secret", "pä ss wörd", "", "IX"] {
            let theirs = postgres_protocol::password::scram_sha_256(password.as_bytes());
            let ours = scram_sha_256(password, &salt_of(&theirs), DEFAULT_ITERATIONS);
            assert_eq!(ours, theirs, "password {password:?}");
        }
    }

    #[test]
    fn scram_format_and_random_salt() {
        let a = scram_sha_256_random_salt("pw");
        let b = scram_sha_256_random_salt("pw");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert_ne!(a, b);
        let fixed = scram_sha_256("pw", &[7; 16], NonZeroU32::new(1).unwrap());
        assert!(fixed.starts_with("SCRAM-SHA-256$1:BwcHBwcHBwcHBwcHBwcHBw==$"));
    }
}
