//! Generated passwords.

use rand::distr::{Alphanumeric, SampleString};

/// 24 random characters from `[A-Za-z0-9]`, from the operating system's generator
/// (about 143 bits; alphanumeric so that no file format ever needs to quote them).
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_24_alphanumerics_and_differ() {
        let a = super::generate();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, super::generate());
    }
}
