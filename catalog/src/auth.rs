//! Who may ask the federation: the `[auth]` section of `federation.toml`.
//!
//! The coordinator answers only authenticated analysts, because every query
//! is logged at every site under the analyst's name and a site's data steward
//! must be able to tell who asked. Two kinds of principal exist:
//!
//! * **users**, who log in with a password through the Flight SQL handshake
//!   (HTTP Basic) and receive a short-lived bearer token. Only an argon2 PHC
//!   hash of the password is stored (`ihdsi hash-password` makes one);
//! * **service tokens** for unattended jobs, presented directly as
//!   `authorization: Bearer …`. Only a BLAKE2s-256 digest is stored
//!   (`ihdsi new-token` makes a token and its digest); tokens are 256-bit
//!   random, so a fast digest is enough.
//!
//! This crate only reads and checks the shape of the section; the
//! cryptography lives with the server that verifies credentials.

use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};

/// `[auth]` in `federation.toml`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Analysts who log in with a password.
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Bearer tokens of service accounts.
    #[serde(default)]
    pub service_tokens: Vec<ServiceToken>,
    /// Lifetime of a token issued by the handshake.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            service_tokens: Vec::new(),
            token_ttl_secs: default_token_ttl(),
        }
    }
}

// Hashes and digests are not secrets, but they are what an offline guessing
// attack starts from: keep them out of logs and `{:?}` output.
impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        let services: Vec<&str> = self
            .service_tokens
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        f.debug_struct("AuthSection")
            .field("users", &users)
            .field("service_tokens", &services)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish()
    }
}

fn default_token_ttl() -> u64 {
    8 * 3600
}

/// `[[auth.users]]`: an analyst with a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The analyst's name, as logged at the sites.
    pub name: String,
    /// Argon2 PHC string, e.g. `$argon2id$v=19$m=19456,t=2,p=1$…`.
    pub password_hash: String,
}

/// `[[auth.service_tokens]]`: a service account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToken {
    /// The account's name, as logged at the sites.
    pub name: String,
    /// Lower-case hex BLAKE2s-256 digest of the token.
    pub token_blake2s: String,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Check that a principal name can be logged and sent in a Basic header.
pub fn validate_principal(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::ConfigInvalid(format!(
            "analyst name '{}' must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-' or '@'",
            name.escape_debug()
        )))
    }
}

impl AuthSection {
    /// Check names, digests and that someone can log in at all.
    pub fn validate(&self) -> Result<()> {
        if self.users.is_empty() && self.service_tokens.is_empty() {
            return Err(CatalogError::ConfigInvalid(
                "[auth] lists no users and no service tokens, so nobody could query; \
                 add [[auth.users]] with a hash from `ihdsi hash-password`"
                    .into(),
            ));
        }
        if self.token_ttl_secs == 0 {
            return Err(CatalogError::ConfigInvalid(
                "auth.token_ttl_secs must be at least 1".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let names = self.users.iter().map(|u| u.name.as_str());
        for name in names.chain(self.service_tokens.iter().map(|t| t.name.as_str())) {
            validate_principal(name)?;
            if !seen.insert(name) {
                return Err(CatalogError::ConfigInvalid(format!(
                    "analyst '{name}' is listed twice in [auth]"
                )));
            }
        }
        for u in &self.users {
            if !u.password_hash.starts_with("$argon2") {
                return Err(CatalogError::ConfigInvalid(format!(
                    "user '{}': password_hash must be an argon2 PHC string from `ihdsi hash-password`",
                    u.name
                )));
            }
        }
        for t in &self.service_tokens {
            let hex = t.token_blake2s.len() == 64
                && t.token_blake2s
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !hex {
                return Err(CatalogError::ConfigInvalid(format!(
                    "service token '{}': token_blake2s must be 64 lower-case hex digits from `ihdsi new-token`",
                    t.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserEntry {
        UserEntry {
            name: name.into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        }
    }

    #[test]
    fn an_empty_section_is_refused_because_nobody_could_log_in() {
        let err = AuthSection::default().validate().expect_err("empty");
        assert!(err.to_string().contains("no users"), "{err}");
    }

    #[test]
    fn names_hashes_and_digests_are_checked() {
        let mut auth = AuthSection {
            users: vec![user("alice@lih.lu")],
            ..AuthSection::default()
        };
        auth.validate().expect("valid");
        auth.users.push(user("alice@lih.lu"));
        assert!(auth.validate().is_err(), "duplicate");
        auth.users = vec![user("al ice")];
        assert!(auth.validate().is_err(), "space in name");
        auth.users = vec![UserEntry {
            name: "bob".into(),
            password_hash: "plaintext".into(),
        }];
        assert!(auth.validate().is_err(), "not a hash");
        auth.users.clear();
        auth.service_tokens = vec![ServiceToken {
            name: "nightly".into(),
            token_blake2s: "ab".repeat(32),
        }];
        auth.validate().expect("token only");
        auth.service_tokens[0].token_blake2s = "AB".repeat(32);
        assert!(auth.validate().is_err(), "upper-case hex");
    }

    #[test]
    fn debug_output_names_principals_but_not_hashes() {
        let auth = AuthSection {
            users: vec![user("alice")],
            ..AuthSection::default()
        };
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("alice") && !shown.contains("argon2"),
            "{shown}"
        );
    }
}
