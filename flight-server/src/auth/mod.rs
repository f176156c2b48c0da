//! Analyst authentication for the coordinator's Flight SQL service.
//!
//! The flow is the one Flight SQL clients implement (ADBC, the JDBC driver,
//! pyarrow.flight, the Rust client):
//!
//! ```text
//! Handshake + authorization: Basic base64(user:password)
//!     ─► argon2 check ─► authorization: Bearer <token> (response header)
//! every later call + authorization: Bearer <token>
//!     ─► issued-token table or configured service token ─► Analyst
//! ```
//!
//! [`layer::AuthLayer`] runs in front of every gRPC method, so no handler
//! can forget the check; handlers read the [`Analyst`] it attaches. The
//! analyst's name travels with each subplan to the sites, whose logs record
//! it. Refusals are logged with their reason and never with the secret.

pub mod layer;
pub mod secrets;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datafusion::common::runtime::SpawnedTask;
use http::HeaderMap;
use ihdsi_catalog::AuthSection;

use crate::error::{AuthError, ServerError};

/// An authenticated caller, attached to each request by [`layer::AuthLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analyst {
    /// The configured user or service-account name.
    pub name: String,
    /// How the caller proved it.
    pub via: Via,
}

/// How an [`Analyst`] authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Via {
    /// HTTP Basic user name and password (the handshake mints a token).
    Password,
    /// A bearer token: issued by a handshake or configured for a service.
    Bearer(String),
}

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Password => f.write_str("Password"),
            Via::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

#[derive(Debug)]
struct Session {
    analyst: String,
    expires: Instant,
}

/// Verifies credentials and issues session tokens.
pub struct Authenticator {
    /// user → argon2 PHC string.
    users: HashMap<String, String>,
    /// token digest → service-account name.
    services: HashMap<String, String>,
    /// token digest → session issued by a handshake.
    sessions: Mutex<HashMap<String, Session>>,
    ttl: Duration,
    /// Verified against for unknown users, so that a wrong user name costs
    /// as much time as a wrong password and names cannot be probed.
    decoy: String,
    /// Password checks running at once. Each argon2 check holds its
    /// memory cost (19 MiB by default) for its duration, so 32 clients
    /// logging in together took over 600 MiB, and glibc kept much of it
    /// afterwards; waiting logins queue here instead.
    verifying: tokio::sync::Semaphore,
}

/// Password checks at once: one per core, at most four.
fn concurrent_checks() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("services", &self.services.values().collect::<Vec<_>>())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Build from `[auth]`; refuses a section nobody could log in with.
    pub fn new(section: &AuthSection) -> Result<Self, ServerError> {
        section
            .validate()
            .map_err(|e| ServerError::AuthSetup(e.to_string()))?;
        for u in &section.users {
            secrets::check_hash(&u.password_hash).map_err(|e| {
                ServerError::AuthSetup(format!("user '{}': unreadable password_hash: {e}", u.name))
            })?;
        }
        Ok(Self {
            users: section
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.clone()))
                .collect(),
            services: section
                .service_tokens
                .iter()
                .map(|t| (t.token_blake2s.clone(), t.name.clone()))
                .collect(),
            sessions: Mutex::new(HashMap::new()),
            ttl: Duration::from_secs(section.token_ttl_secs),
            decoy: secrets::hash_password(&secrets::new_token())?,
            verifying: tokio::sync::Semaphore::new(concurrent_checks()),
        })
    }

    /// Authenticate the `authorization` header of a call.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Analyst, AuthError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed("header is not ASCII"))?;
        let (scheme, rest) = value
            .split_once(' ')
            .ok_or(AuthError::Malformed("expected 'Basic …' or 'Bearer …'"))?;
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = secrets::decode_basic(rest)?;
            self.check_password(user, password).await
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.check_token(rest.trim())
        } else {
            Err(AuthError::Malformed("expected 'Basic …' or 'Bearer …'"))
        }
    }

    async fn check_password(&self, user: String, password: String) -> Result<Analyst, AuthError> {
        let known = self.users.get(&user);
        let phc = known.unwrap_or(&self.decoy).clone();
        // The semaphore is never closed; a closed one would refuse.
        let Ok(_turn) = self.verifying.acquire().await else {
            return Err(AuthError::BadPassword { user });
        };
        let matches =
            SpawnedTask::spawn_blocking(move || secrets::verify_password(&phc, &password))
                .await
                .unwrap_or(false);
        if matches && known.is_some() {
            Ok(Analyst {
                name: user,
                via: Via::Password,
            })
        } else {
            Err(AuthError::BadPassword { user })
        }
    }

    fn check_token(&self, token: &str) -> Result<Analyst, AuthError> {
        let digest = secrets::token_digest(token);
        let bearer = |name: &str| Analyst {
            name: name.to_string(),
            via: Via::Bearer(token.to_string()),
        };
        if let Some(name) = self.services.get(&digest) {
            return Ok(bearer(name));
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(&digest) {
            Some(s) if s.expires > Instant::now() => Ok(bearer(&s.analyst)),
            Some(_) => {
                let analyst = sessions
                    .remove(&digest)
                    .map(|s| s.analyst)
                    .unwrap_or_default();
                Err(AuthError::Expired { analyst })
            }
            None => Err(AuthError::UnknownToken),
        }
    }

    /// The token to return from a handshake: a fresh one for a password
    /// login, the presented one for a bearer handshake (as the JDBC driver
    /// does with `token=`).
    pub fn token_for(&self, analyst: &Analyst) -> String {
        match &analyst.via {
            Via::Bearer(token) => token.clone(),
            Via::Password => self.issue(&analyst.name),
        }
    }

    fn issue(&self, analyst: &str) -> String {
        let token = secrets::new_token();
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            secrets::token_digest(&token),
            Session {
                analyst: analyst.to_string(),
                expires: now + self.ttl,
            },
        );
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ihdsi_catalog::auth::{ServiceToken, UserEntry};

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            value.parse().expect("header value"),
        );
        h
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        use base64::Engine;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers(&format!("Basic {creds}"))
    }

    fn authenticator(ttl_secs: u64) -> (Authenticator, String) {
        let service = secrets::new_token();
        let section = AuthSection {
            users: vec![UserEntry {
                name: "alice".into(),
                password_hash: secrets::hash_password("s3cret").expect("hash"),
            }],
            service_tokens: vec![ServiceToken {
                name: "nightly".into(),
                token_blake2s: secrets::token_digest(&service),
            }],
            token_ttl_secs: ttl_secs,
        };
        (Authenticator::new(&section).expect("auth"), service)
    }

    #[tokio::test]
    async fn passwords_tokens_and_service_accounts() {
        let (auth, service) = authenticator(3600);
        let alice = auth
            .authenticate(&basic("alice", "s3cret"))
            .await
            .expect("password");
        assert_eq!(alice.via, Via::Password);
        let token = auth.token_for(&alice);
        let again = auth
            .authenticate(&headers(&format!("Bearer {token}")))
            .await
            .expect("issued token");
        assert_eq!(again.name, "alice");
        assert_eq!(auth.token_for(&again), token, "bearer handshake echoes");
        let svc = auth
            .authenticate(&headers(&format!("Bearer {service}")))
            .await
            .expect("service token");
        assert_eq!(svc.name, "nightly");
    }

    #[tokio::test]
    async fn each_failure_names_its_cause_without_the_secret() {
        let (auth, _) = authenticator(3600);
        let cases = [
            (HeaderMap::new(), "no credentials"),
            (basic("alice", "wrong"), "invalid user name or password"),
            (basic("mallory", "s3cret"), "invalid user name or password"),
            (headers("Bearer forged"), "unknown bearer token"),
            (headers("Digest abc"), "malformed"),
        ];
        for (h, expected) in cases {
            let err = auth.authenticate(&h).await.expect_err("refused");
            let text = err.to_string();
            assert!(text.contains(expected), "{text}");
            assert!(
                !text.contains("wrong") && !text.contains("s3cret"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn issued_tokens_expire() {
        let (auth, _) = authenticator(1);
        let token = auth.issue("alice");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let err = auth
            .authenticate(&headers(&format!("Bearer {token}")))
            .await
            .expect_err("expired");
        assert_eq!(
            err,
            AuthError::Expired {
                analyst: "alice".into()
            }
        );
    }
}
