//! The zCDP budget ledger: how much privacy loss each permit has spent.
//!
//! Under ρ-zCDP, the losses of successive releases add up. A permit grants
//! a total ρ; every differentially private query is charged *before* it
//! runs, atomically (two concurrent queries can never both fit in the last
//! bit of budget), durably (the charge is fsync'ed first, so a crash can
//! only lose budget, never give it back), and is never refunded, even if
//! the query then fails: a failure after the sites ran can still carry
//! information.
//!
//! Amounts are integers in nano-ρ (10⁻⁹ ρ), so the ledger's total is
//! exactly the sum of its charges; costs are rounded *up* to the next
//! nano-ρ. The file is JSON lines, one charge each, replayed on open, so
//! the budget survives restarts.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Nano-ρ per ρ.
pub const NANO: u64 = 1_000_000_000;

/// Why a charge was not made. `#[non_exhaustive]`: code outside this
/// crate that matches on it keeps a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    #[error(
        "privacy budget exhausted for {principal}: the query costs ρ = {cost}, {remaining} of {total} remain"
    )]
    Exhausted {
        principal: String,
        cost: Rho,
        remaining: Rho,
        total: Rho,
    },
    #[error("budget ledger {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("budget ledger {path} line {line} is unreadable; refusing to guess what was spent")]
    Damaged { path: PathBuf, line: usize },
    #[error("budget ledger {path} is in use by another process")]
    InUse { path: PathBuf },
}

/// An amount of zCDP privacy loss, in nano-ρ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rho(pub u64);

impl Rho {
    /// ρ as a float, rounded *up* to the next nano-ρ (never undercharge).
    pub fn from_f64_up(rho: f64) -> Option<Self> {
        if !(rho.is_finite() && rho >= 0.0) {
            return None;
        }
        let nano = (rho * NANO as f64).ceil();
        (nano <= u64::MAX as f64).then_some(Rho(nano as u64))
    }

    /// ρ as a float (display and metadata only; accounting stays integer).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / NANO as f64
    }
}

impl std::fmt::Display for Rho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.9}", self.as_f64())
    }
}

/// One line of the ledger file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Charge {
    principal: String,
    query_id: String,
    nano_rho: u64,
    time: String,
}

#[derive(Debug)]
struct State {
    file: File,
    spent: BTreeMap<String, u64>,
}

/// A persistent ledger shared by every query of a coordinator.
#[derive(Debug)]
pub struct BudgetLedger {
    path: PathBuf,
    state: Mutex<State>,
}

/// What a successful charge left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    pub cost: Rho,
    pub spent: Rho,
    pub remaining: Rho,
}

impl BudgetLedger {
    /// Open (or create) the ledger at `path` and replay its charges.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let io = |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut spent = BTreeMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            for (i, line) in text.lines().enumerate() {
                let charge: Charge =
                    serde_json::from_str(line).map_err(|_| LedgerError::Damaged {
                        path: path.to_path_buf(),
                        line: i + 1,
                    })?;
                let total: &mut u64 = spent.entry(charge.principal).or_default();
                *total = total.saturating_add(charge.nano_rho);
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        file.try_lock().map_err(|_| LedgerError::InUse {
            path: path.to_path_buf(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(State { file, spent }),
        })
    }

    /// What `principal` has spent so far.
    pub fn spent(&self, principal: &str) -> Rho {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Rho(state.spent.get(principal).copied().unwrap_or(0))
    }

    /// Charge `cost` to `principal` against its `total`, durably, or refuse
    /// if it does not fit. Check, write, fsync and update happen under one
    /// lock, so concurrent charges never overspend.
    pub fn charge(
        &self,
        principal: &str,
        query_id: &str,
        cost: Rho,
        total: Rho,
    ) -> Result<Charged, LedgerError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let spent = state.spent.get(principal).copied().unwrap_or(0);
        let remaining = total.0.saturating_sub(spent);
        if cost.0 > remaining {
            return Err(LedgerError::Exhausted {
                principal: principal.to_string(),
                cost,
                remaining: Rho(remaining),
                total,
            });
        }
        let line = serde_json::to_string(&Charge {
            principal: principal.to_string(),
            query_id: query_id.to_string(),
            nano_rho: cost.0,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        })
        .map_err(|e| LedgerError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        state
            .file
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io)?;
        state.file.sync_data().map_err(io)?;
        let now = spent + cost.0;
        state.spent.insert(principal.to_string(), now);
        Ok(Charged {
            cost,
            spent: Rho(now),
            remaining: Rho(total.0 - now),
        })
    }
}

#[cfg(test)]
mod tests;
