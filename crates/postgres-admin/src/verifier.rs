//! Password verifiers computed locally, so the server never sees a plaintext
//! password.

/// A SCRAM-SHA-256 verifier (RFC 5802, RFC 7677) in PostgreSQL's format,
/// `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`, with a random 16-byte
/// salt and PostgreSQL's default 4096 iterations.
///
/// The password is SASLprep-normalised first where that succeeds, as
/// PostgreSQL and its clients do.
pub fn scram_sha_256_random_salt(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_format_and_random_salt() {
        let a = scram_sha_256_random_salt("pw");
        let b = scram_sha_256_random_salt("pw");
        // Base64 of a 16-byte salt is 24 characters, of a 32-byte key 44.
        let fields: Vec<&str> = a.split(['$', ':']).collect();
        let lengths: Vec<usize> = fields.iter().map(|f| f.len()).collect();
        assert_eq!(fields[..2], ["SCRAM-SHA-256", "4096"], "{a}");
        assert_eq!(lengths[2..], [24, 44, 44], "{a}");
        assert_ne!(a, b);
    }
}
