//! The audit trail: an append-only, hash-chained JSON-lines file, written
//! durably at the coordinator and at every site.
//!
//! A data steward must be able to show who asked what of their patients'
//! data, under which permit, and what the engine decided, and must be able
//! to tell when that record was altered. Each line is one JSON object with
//! sorted keys; `prev` is the previous line's `hash`, and `hash` is the
//! SHA-256 of the line without its `hash` key. Editing, reordering or
//! deleting a line breaks the chain from that line on. Deleting the *last*
//! lines would not, so `<file>.head` holds the latest sequence number and
//! hash, replaced atomically after each append (ship it off the machine to
//! make truncation evident to a third party, as transparency logs do).
//!
//! What goes in: time, analyst, permit, purpose, SQL, the subplan SQL, the
//! decision with its code, and counts of groups released and suppressed.
//! What never goes in: result values and per-site partial numbers. The
//! record types ([`QueryRecord`], [`ResultRecord`], [`SubplanRecord`]) have
//! no field that could hold one.
//!
//! Every append is `fsync`ed before the caller proceeds. The coordinator
//! writes the query record *before* any site is contacted, so a query that
//! reached a site is on record even if the coordinator is killed mid-query.

mod records;
mod verify;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};

pub use records::{
    AdvisoryRecord, Decision, QueryRecord, ReceivedRecord, RefusalRecord, ResultRecord,
    SubplanRecord, SubplanSql,
};
pub use verify::{VerifyReport, verify_file};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the audit trail cannot be written or read. `#[non_exhaustive]`:
/// code outside this crate that matches on it keeps a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit trail {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "audit trail {path} is damaged at line {line}: {reason}; run `ihdsi audit verify {path}`"
    )]
    Damaged {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("audit trail {path} is in use by another process")]
    InUse { path: PathBuf },
    #[error("cannot encode an audit record: {0}")]
    Encode(String),
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash of a record object (without its `hash` key).
pub(crate) fn record_hash(body: &Map<String, Value>) -> String {
    // serde_json's Map is a BTreeMap here: keys serialise sorted, so the
    // writer and any later reader hash the same bytes.
    sha256_hex(Value::Object(body.clone()).to_string().as_bytes())
}

#[derive(Debug)]
struct Chain {
    file: File,
    seq: u64,
    last: String,
}

/// An open audit trail. Appends are serialised and durable.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    who: String,
    chain: Mutex<Chain>,
}

impl AuditLog {
    /// Open (or create) the trail at `path`, written by `who` (`coordinator`
    /// or `site:<id>`). An existing trail is verified first: appending to a
    /// damaged chain would hide the damage, so that refuses to start.
    pub fn open(path: &Path, who: &str) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let (seq, last) = if path.exists() {
            let report = verify_file(path)?;
            if let Some(bad) = report.first_bad {
                return Err(AuditError::Damaged {
                    path: path.to_path_buf(),
                    line: bad.line,
                    reason: bad.reason,
                });
            }
            (report.records, report.last_hash)
        } else {
            (0, GENESIS.to_string())
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        // One writer per trail: a second one would fork the chain.
        file.try_lock().map_err(|_| AuditError::InUse {
            path: path.to_path_buf(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            who: who.to_string(),
            chain: Mutex::new(Chain { file, seq, last }),
        })
    }

    /// The trail's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record durably, off the async threads.
    pub async fn append<R: Serialize>(
        self: &Arc<Self>,
        event: &str,
        record: &R,
    ) -> Result<(), AuditError> {
        let mut body = match serde_json::to_value(record) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(AuditError::Encode("a record must be an object".into())),
            Err(e) => return Err(AuditError::Encode(e.to_string())),
        };
        body.insert("event".into(), Value::from(event));
        body.insert("by".into(), Value::from(self.who.as_str()));
        let log = Arc::clone(self);
        // Detached: a record whose caller stopped waiting is still written.
        crate::tasks::blocking_to_end(move || log.append_blocking(body))
            .await
            .map_err(|e| AuditError::Encode(format!("audit writer task failed: {e}")))?
    }

    fn append_blocking(&self, mut body: Map<String, Value>) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut chain = self
            .chain
            .lock()
            .map_err(|_| AuditError::Encode("audit writer poisoned".into()))?;
        let seq = chain.seq + 1;
        body.insert("seq".into(), Value::from(seq));
        body.insert("prev".into(), Value::from(chain.last.as_str()));
        body.insert(
            "time".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        let hash = record_hash(&body);
        body.insert("hash".into(), Value::from(hash.as_str()));
        let mut line = Value::Object(body).to_string();
        line.push('\n');
        // One write of the whole line on an O_APPEND file, then fsync.
        chain.file.write_all(line.as_bytes()).map_err(io)?;
        chain.file.sync_data().map_err(io)?;
        write_head(&self.path, seq, &hash).map_err(io)?;
        chain.seq = seq;
        chain.last = hash;
        Ok(())
    }
}

/// `<path>.head`.
pub fn head_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".head");
    PathBuf::from(name)
}

/// Replace the head atomically: write a temporary file, fsync, rename.
fn write_head(path: &Path, seq: u64, hash: &str) -> std::io::Result<()> {
    let head = head_path(path);
    let mut tmp = head.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{{\"seq\":{seq},\"hash\":\"{hash}\"}}\n").as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, &head)
}

#[cfg(test)]
mod tests;
