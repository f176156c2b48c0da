//! Data permits at the coordinator: which permit a query runs under.
//!
//! The coordinator does not decide whether a permit is good: every site
//! verifies it for itself (`ihdsi_catalog::permit`). The coordinator only
//! attaches one to every subplan. An analyst selects it when connecting,
//! with the `x-ihdsi-permit` call header (ADBC:
//! `adbc.flight.sql.rpc.call_header.x-ihdsi-permit`; JDBC: a connection
//! property of that name), holding either a permit id from the coordinator's
//! store or a whole permit token. An analyst who holds exactly one current
//! permit in the store need not select it.

use std::path::Path;

use chrono::{DateTime, Utc};
use ihdsi_catalog::permit::{self, Permit};
use ihdsi_engine::{Coordinator, QueryContext};
use tonic::Status;

use crate::error::{Result, ServerError};

/// The call header that selects a permit.
pub const PERMIT_HEADER: &str = "x-ihdsi-permit";

/// A permit as the store holds it.
#[derive(Clone)]
struct Held {
    token: String,
    permit: Permit,
}

/// Permits issued to this federation's analysts (`[permits] dir`).
#[derive(Clone, Default)]
pub struct PermitStore {
    held: Vec<Held>,
}

// Tokens are credentials: `{:?}` names the permits, never their tokens.
impl std::fmt::Debug for PermitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.held.iter().map(|h| h.permit.id.as_str()).collect();
        f.debug_struct("PermitStore")
            .field("permits", &ids)
            .finish()
    }
}

impl PermitStore {
    /// Read every `*.permit` file in `dir`; a file that is not a permit
    /// token stops start-up with its name.
    pub fn load(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ServerError::Permit(format!("cannot read permit folder {}: {e}", dir.display()))
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "permit"))
            .collect();
        files.sort();
        let mut store = Self::default();
        for path in files {
            let token = std::fs::read_to_string(&path)
                .map_err(|e| ServerError::Permit(format!("cannot read {}: {e}", path.display())))?;
            store
                .add(token.trim())
                .map_err(|e| ServerError::Permit(format!("{}: {e}", path.display())))?;
        }
        Ok(store)
    }

    /// Add one token.
    pub fn add(&mut self, token: &str) -> std::result::Result<(), String> {
        let (_, _, permit) = permit::decode(token).map_err(|e| e.to_string())?;
        self.held.push(Held {
            token: token.to_string(),
            permit,
        });
        Ok(())
    }

    /// Number of permits held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The permit token `analyst`'s query runs under, given the value of
    /// the `x-ihdsi-permit` header (if sent). `None` means no permit: sites
    /// that require one will refuse, naming why.
    pub fn select(
        &self,
        analyst: &str,
        header: Option<&str>,
        now: DateTime<Utc>,
    ) -> std::result::Result<Option<String>, Status> {
        match header.map(str::trim).filter(|h| !h.is_empty()) {
            Some(token) if token.starts_with("ihdsi-permit.") => {
                let (_, _, p) =
                    permit::decode(token).map_err(|e| Status::invalid_argument(e.to_string()))?;
                if p.holder != analyst {
                    return Err(Status::permission_denied(format!(
                        "data permit {} is held by {}, not by {analyst}",
                        p.id, p.holder
                    )));
                }
                Ok(Some(token.to_string()))
            }
            Some(id) => self
                .held
                .iter()
                .find(|h| h.permit.id == id && h.permit.holder == analyst)
                .map(|h| Some(h.token.clone()))
                .ok_or_else(|| {
                    Status::permission_denied(format!(
                        "no data permit '{id}' is held by {analyst} at this coordinator"
                    ))
                }),
            None => self.only_current(analyst, now),
        }
    }

    fn only_current(
        &self,
        analyst: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<Option<String>, Status> {
        let current = |p: &Permit| {
            let t = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
            matches!((t(&p.valid_from), t(&p.valid_until)), (Ok(a), Ok(b)) if a <= now && now < b)
        };
        let mine: Vec<&Held> = self
            .held
            .iter()
            .filter(|h| h.permit.holder == analyst && current(&h.permit))
            .collect();
        match mine.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.token.clone())),
            many => Err(Status::failed_precondition(format!(
                "{analyst} holds several current data permits ({}): select one with the {PERMIT_HEADER} call header",
                many.iter()
                    .map(|h| h.permit.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// Attach the permit `request` selects (or the caller's one current permit)
/// to `cx`; a selection that cannot be honoured is refused and goes on the
/// coordinator's audit trail.
pub async fn attach<T>(
    store: &PermitStore,
    coordinator: &Coordinator,
    cx: QueryContext,
    sql: &str,
    request: &tonic::Request<T>,
) -> std::result::Result<QueryContext, Status> {
    let header = request
        .metadata()
        .get(PERMIT_HEADER)
        .and_then(|v| v.to_str().ok());
    match store.select(&cx.analyst, header, chrono::Utc::now()) {
        Ok(permit) => Ok(cx.with_permit(permit)),
        Err(status) => {
            tracing::info!(
                query_id = cx.query_id,
                analyst = cx.analyst,
                reason = status.message(),
                "query refused: data permit selection"
            );
            coordinator
                .record_refusal(&cx, sql, "permit.selection", status.message())
                .await
                .map_err(|e| crate::status::to_status(&e))?;
            Err(status)
        }
    }
}

/// Read a PKCS#8 signing key written by `ihdsi permit keygen`.
pub fn read_signing_key(path: &Path) -> Result<Vec<u8>> {
    use base64::Engine;
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServerError::Permit(format!("cannot read {}: {e}", path.display())))?;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| {
            ServerError::Permit(format!(
                "{} is not a key written by `ihdsi permit keygen`",
                path.display()
            ))
        })
}

/// Write a new access-body signing key to `path` (mode 0600); return its
/// public key for the sites' `trusted_keys`.
pub fn write_signing_key(path: &Path) -> Result<String> {
    use base64::Engine;
    let (pkcs8, public) = permit::generate_key()?;
    let text = base64::engine::general_purpose::STANDARD.encode(pkcs8);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| ServerError::Permit(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, format!("{text}\n"))
        .map_err(|e| ServerError::Permit(format!("cannot write {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(public)
}
