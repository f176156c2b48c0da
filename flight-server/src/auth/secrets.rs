//! Password hashes, random tokens and their digests, and the Basic header.
//!
//! Passwords are stored as argon2id PHC strings (memory-hard, so a leaked
//! config does not give passwords away cheaply). Tokens are 256 random bits
//! from the operating system, so a BLAKE2s digest is enough to store and
//! look them up, and comparing digests instead of tokens keeps lookups from
//! leaking a token's prefix through timing.

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use blake2::{Blake2s256, Digest};

use crate::error::{AuthError, ServerError};

/// Base64 that accepts both padded and unpadded input: the ADBC Flight SQL
/// driver sends Basic credentials without padding, JDBC with.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// 32 random bytes from the OS (through uuid v4's getrandom).
fn random_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id PHC string for `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, ServerError> {
    let salt = SaltString::encode_b64(&random_bytes()[..16])
        .map_err(|e| ServerError::AuthSetup(format!("cannot make a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServerError::AuthSetup(format!("cannot hash the password: {e}")))
}

/// Check that a configured hash can be parsed (at start-up, not at login).
pub fn check_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!("algorithm {} is not argon2", parsed.algorithm));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the PHC string lacks its salt or hash".into());
    }
    argon2::Params::try_from(&parsed)
        .map(|_| ())
        .map_err(|e| format!("unusable argon2 parameters: {e}"))
}

/// Whether `password` matches the PHC string `phc`. CPU-heavy by design:
/// call it off the async executor.
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A new 256-bit token, as 64 hex digits.
pub fn new_token() -> String {
    hex(&random_bytes())
}

/// The BLAKE2s-256 digest of a token, as 64 lower-case hex digits.
pub fn token_digest(token: &str) -> String {
    hex(&Blake2s256::digest(token.as_bytes()))
}

/// Decode the value of an `authorization: Basic …` header into
/// `(user, password)`.
pub fn decode_basic(encoded: &str) -> Result<(String, String), AuthError> {
    let raw = LENIENT
        .decode(encoded.trim())
        .map_err(|_| AuthError::Malformed("Basic credentials are not base64"))?;
    let text = String::from_utf8(raw)
        .map_err(|_| AuthError::Malformed("Basic credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or(AuthError::Malformed("Basic credentials lack ':'"))?;
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        check_hash(&phc).expect("parses");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
        for bad in [
            "$argon2id$garbage",
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$pbkdf2$x",
        ] {
            assert!(check_hash(bad).is_err(), "{bad}");
        }
        assert_ne!(phc, hash_password("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn basic_credentials_decode_with_and_without_padding() {
        // "alice:pw" is 8 bytes, so its base64 has one '=' of padding.
        let padded = base64::engine::general_purpose::STANDARD.encode("alice:pw");
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        for encoded in [padded.as_str(), unpadded] {
            assert_eq!(
                decode_basic(encoded).expect("decodes"),
                ("alice".to_string(), "pw".to_string())
            );
        }
        assert!(decode_basic("!!!").is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("alice");
        assert!(decode_basic(&no_colon).is_err());
    }

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_ne!(token_digest(&a), token_digest(&b));
    }
}
