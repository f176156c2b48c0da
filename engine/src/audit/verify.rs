//! `ihdsi audit verify`: walk the chain and name the first bad line.

use std::path::Path;

use serde_json::Value;

use super::{AuditError, GENESIS, head_path, record_hash};

/// The first line that breaks the chain, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records that verified, in order, before the first bad line.
    pub records: u64,
    /// Hash of the last good record ([`GENESIS`] if none).
    pub last_hash: String,
    pub first_bad: Option<BadLine>,
}

fn bad(line: usize, reason: impl Into<String>) -> Option<BadLine> {
    Some(BadLine {
        line,
        reason: reason.into(),
    })
}

/// Check one line against the chain so far; `None` when it is good.
fn check_line(text: &str, line: usize, prev: &str) -> Result<String, Option<BadLine>> {
    let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(text) else {
        return Err(bad(
            line,
            "not a complete JSON record (edited or truncated)",
        ));
    };
    let Some(Value::String(hash)) = body.remove("hash") else {
        return Err(bad(line, "the record has no hash"));
    };
    let seq = body.get("seq").and_then(Value::as_u64);
    if seq != Some(line as u64) {
        return Err(bad(
            line,
            format!(
                "sequence number {} where {line} was expected (a record was deleted, inserted or reordered)",
                seq.map_or("missing".to_string(), |s| s.to_string())
            ),
        ));
    }
    if body.get("prev").and_then(Value::as_str) != Some(prev) {
        return Err(bad(
            line,
            "prev does not match the hash of the line before (a record was deleted, inserted or reordered)",
        ));
    }
    if record_hash(&body) != hash {
        return Err(bad(
            line,
            "the hash does not match the record's content (edited)",
        ));
    }
    Ok(hash)
}

/// Verify the trail at `path` and its head file, if present.
pub fn verify_file(path: &Path) -> Result<VerifyReport, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut report = VerifyReport {
        records: 0,
        last_hash: GENESIS.to_string(),
        first_bad: None,
    };
    let complete = text.is_empty() || text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut hashes = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let line = i + 1;
        if line == lines.len() && !complete {
            report.first_bad = bad(line, "the last record is truncated (no line end)");
            return Ok(report);
        }
        match check_line(l, line, &report.last_hash) {
            Ok(hash) => {
                report.records += 1;
                report.last_hash.clone_from(&hash);
                hashes.push(hash);
            }
            Err(b) => {
                report.first_bad = b;
                return Ok(report);
            }
        }
    }
    report.first_bad = check_head(path, &hashes);
    Ok(report)
}

/// The head must name a record that exists, with the same hash.
fn check_head(path: &Path, hashes: &[String]) -> Option<BadLine> {
    let head = std::fs::read_to_string(head_path(path)).ok()?;
    let Ok(Value::Object(head)) = serde_json::from_str::<Value>(&head) else {
        return bad(hashes.len() + 1, "the head file is unreadable");
    };
    let seq = head.get("seq").and_then(Value::as_u64).unwrap_or(0) as usize;
    let hash = head.get("hash").and_then(Value::as_str).unwrap_or("");
    if seq > hashes.len() {
        return bad(
            hashes.len() + 1,
            format!(
                "the head records {seq} records but the file ends after {} (records were deleted from the end)",
                hashes.len()
            ),
        );
    }
    if seq > 0 && hashes[seq - 1] != hash {
        return bad(seq, "the record differs from the one the head file names");
    }
    None
}
