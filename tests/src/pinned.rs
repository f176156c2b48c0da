//! SQL behaviour pinned in text: `tests/pinned/*.slt`, run with the stock
//! sqllogictest runner against two real federations, the way DataFusion's
//! own suites pin their answers.
//!
//! The suites in `tests/queries/` compare the federation with an oracle,
//! live, so a change that moves both (a threshold, a refusal's wording, a
//! site's SQL, a merge) passes them unseen. Here the rows themselves are
//! written down, one file per stage of the data flow (intake, admission,
//! split, disclosure, binned statistics, merge), so any such change shows up
//! in review as a diff of the files. After a deliberate change,
//! `IHDSI_SLT_COMPLETE=1` (`scripts/slt --complete`) rewrites the expected
//! output from what the federation answers now.
//!
//! **The pinned numbers depend on the synthetic generator.** The cohort is
//! [`PERSONS`] persons from seed [`SEED`] over the sites [`SITES`]
//! ([`pinned_cohort`]); a change to `ihdsi-synthetic` changes them, and the
//! files are then regenerated and the diff reviewed like any other.
//!
//! What the files can say:
//!
//! * `connection k1` before a record runs it on the federation with every
//!   threshold at 1 ([`k1_policy`]); `connection k10`, or none, on the
//!   default policy, k = 10 everywhere ([`k10_policy`]). A `connection` line
//!   applies to the one record after it.
//! * `query … \n METADATA <sql>` returns the result's metadata instead of
//!   its rows, one `key value` row each, sorted: the schema's `ihdsi.*`
//!   keys (`ihdsi.withheld_cells`, `ihdsi.suppressed_groups`, …) except the
//!   query id, and each column's `ihdsi.*` keys as `column:key`.
//! * Errors come back as the message the analyst sees, for `query error
//!   <regex>` and `statement error <regex>`.
//!
//! Cells are text: NULL as `NULL`, an empty string as `(empty)`, floats to
//! six significant digits (so that the order in which sites' partials are
//! added cannot flake a file), lists as `[a, b]`, structs as `{name: v}`.
//! A multi-line last cell (EXPLAIN's plans) continues on rows of its own,
//! one per line, leading spaces shown as `-` (the runner ignores
//! whitespace); such queries must be `nosort`.

use std::collections::VecDeque;
use std::future::Ready;
use std::path::{Path, PathBuf};

use ihdsi_catalog::PrivacyPolicy;
use ihdsi_cli::client::Connection;
use ihdsi_cli::demo::Federation;
use ihdsi_synthetic::GenerateOptions;
use sqllogictest::{
    AsyncDB, Connection as SltConnection, DBOutput, DefaultColumnType, MakeConnection, Record,
    Runner,
};

use self::text::{metadata_rows, result_rows};

mod text;

/// Persons in the pinned cohort.
pub const PERSONS: u64 = 3_000;
/// Seed of the pinned cohort.
pub const SEED: u64 = 42;
/// Sites of the pinned cohort.
pub const SITES: [&str; 3] = ["lu", "us", "kr"];
/// The folder of the pinned files, relative to the package folder, where
/// `cargo test` runs the tests (a path compiled in would name whichever
/// checkout built the binary).
pub const PINNED_DIR: &str = "pinned";
/// Set (to anything) to rewrite the files' expected output.
pub const COMPLETE_ENV: &str = "IHDSI_SLT_COMPLETE";
/// The connection of the federation with every threshold at 1.
pub const K1: &str = "k1";
/// The connection of the federation under the default policy (k = 10).
pub const K10: &str = "k10";
/// sqllogictest's name of the connection a record without one runs on.
const DEFAULT: &str = "default";
/// The prefix of a query answered with its metadata.
const METADATA: &str = "METADATA";

/// The pinned cohort, generated once per test process: fixed size, seed
/// and sites, so that its rows are the same on every run and machine.
pub fn pinned_cohort() -> PathBuf {
    crate::generated(
        &format!("pinned-{PERSONS}-seed-{SEED}"),
        GenerateOptions {
            out: PathBuf::new(),
            persons: PERSONS,
            seed: SEED,
            sites: SITES.iter().map(|s| s.to_string()).collect(),
        },
    )
}

/// Every threshold at 1 and the p% rule off, MIN and MAX allowed: the
/// federation releases everything it can compute (the differential
/// suite's set-up, [`crate::policy`]), withheld groups counted.
pub fn k1_policy() -> PrivacyPolicy {
    crate::policy(1, true)
}

/// The shipped default (k = 10, the p% rule at its default, no MIN or
/// MAX), at the coordinator and at every site, except that withheld groups
/// are counted in the metadata so that `METADATA` queries can pin them
/// (which changes no row).
pub fn k10_policy() -> PrivacyPolicy {
    PrivacyPolicy {
        report_suppressed: true,
        ..PrivacyPolicy::default()
    }
}

/// The two federations over one cohort, and the demo analyst logged in
/// to each.
#[derive(Debug)]
pub struct Federations {
    pub k1: Federation,
    pub k10: Federation,
    k1_analyst: Connection,
    k10_analyst: Connection,
}

impl Federations {
    /// Start both federations over `data` and log in to each.
    pub async fn start(data: &Path) -> Self {
        let k1 = crate::federation(data, k1_policy(), k1_policy()).await;
        let k10 = crate::federation(data, k10_policy(), k10_policy()).await;
        let k1_analyst = crate::connect(&k1.uri).await;
        let k10_analyst = crate::connect(&k10.uri).await;
        Self {
            k1,
            k10,
            k1_analyst,
            k10_analyst,
        }
    }

    /// Stop every server of both.
    pub async fn shutdown(self) {
        self.k1.shutdown().await;
        self.k10.shutdown().await;
    }

    /// The runner's connection factory for `records`.
    fn factory(&self, records: &[Record<DefaultColumnType>]) -> Factory {
        Factory {
            order: connection_order(records),
            k1: self.k1_analyst.clone(),
            k10: self.k10_analyst.clone(),
        }
    }
}

/// Run every `pinned/*.slt` file, in name order, against `federations`;
/// with [`COMPLETE_ENV`] set, rewrite each file's expected output first.
/// One line per failed record (or file).
pub async fn pinned_files(federations: &Federations) -> Vec<String> {
    let complete = std::env::var_os(COMPLETE_ENV).is_some();
    let mut failures = Vec::new();
    for file in pinned_paths() {
        if complete && let Err(e) = complete_file(federations, &file).await {
            failures.push(format!("{}: cannot rewrite: {e}", file.display()));
            continue;
        }
        failures.extend(check_file(federations, &file).await);
    }
    failures
}

/// The `.slt` files of [`PINNED_DIR`], sorted.
pub fn pinned_paths() -> Vec<PathBuf> {
    let dir = Path::new(PINNED_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run from the package folder, tests/)",
                dir.display()
            )
        })
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no .slt file", dir.display());
    files
}

/// Every record of `file`, each failure as the runner reports it (all of
/// them, not only the first).
async fn check_file(federations: &Federations, file: &Path) -> Vec<String> {
    let records = match sqllogictest::parse_file::<DefaultColumnType>(file) {
        Ok(records) => records,
        Err(e) => return vec![format!("{}: {e}", file.display())],
    };
    let mut runner = Runner::new(federations.factory(&records));
    runner.with_column_validator(sqllogictest::strict_column_validator::<DefaultColumnType>);
    let mut failures = Vec::new();
    for record in records {
        if matches!(record, Record::Halt { .. }) {
            break;
        }
        if let Err(e) = runner.run_async(record).await {
            failures.push(e.display(false).to_string());
        }
    }
    runner.shutdown_async().await;
    failures
}

/// Rewrite `file`'s expected output (rows, column types, error messages
/// that no longer match) from the federations' answers.
async fn complete_file(federations: &Federations, file: &Path) -> Result<(), String> {
    let records = sqllogictest::parse_file::<DefaultColumnType>(file).map_err(|e| e.to_string())?;
    let mut runner = Runner::new(federations.factory(&records));
    let rewritten = runner
        .update_test_file(
            file,
            " ",
            sqllogictest::default_validator,
            sqllogictest::default_normalizer,
            sqllogictest::strict_column_validator::<DefaultColumnType>,
        )
        .await
        .map_err(|e| e.to_string());
    runner.shutdown_async().await;
    rewritten
}

/// The connection names of `records` in the order the runner first asks
/// for them. sqllogictest's factory is not told which connection it makes,
/// but the runner makes each one once, when a record first names it, and
/// in file order; so the factory hands out the names in this order.
fn connection_order(records: &[Record<DefaultColumnType>]) -> VecDeque<String> {
    let mut order = VecDeque::new();
    for record in records {
        let connection = match record {
            Record::Statement { connection, .. } | Record::Query { connection, .. } => connection,
            Record::Halt { .. } => break,
            _ => continue,
        };
        let name = match connection {
            SltConnection::Default => DEFAULT.to_string(),
            SltConnection::Named(name) => name.clone(),
        };
        if !order.contains(&name) {
            order.push_back(name);
        }
    }
    order
}

/// Makes the runner's connections, in [`connection_order`]. It never
/// fails: an unknown name makes a connection whose every query fails
/// naming it, so that a failure cannot shift the order.
#[derive(Debug)]
struct Factory {
    order: VecDeque<String>,
    k1: Connection,
    k10: Connection,
}

impl MakeConnection for Factory {
    type Conn = PinnedDb;
    type MakeFuture = Ready<Result<PinnedDb, PinnedError>>;

    fn make(&mut self) -> Self::MakeFuture {
        let name = self
            .order
            .pop_front()
            .unwrap_or_else(|| DEFAULT.to_string());
        let connection = match name.as_str() {
            K1 => Some(self.k1.clone()),
            K10 | DEFAULT => Some(self.k10.clone()),
            _ => None,
        };
        std::future::ready(Ok(PinnedDb { name, connection }))
    }
}

/// A query's failure, as the message the analyst sees.
#[derive(Debug)]
struct PinnedError(String);

impl std::fmt::Display for PinnedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinnedError {}

/// One named connection: the demo analyst on one federation.
#[derive(Debug)]
struct PinnedDb {
    name: String,
    connection: Option<Connection>,
}

#[tonic::async_trait]
impl AsyncDB for PinnedDb {
    type Error = PinnedError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PinnedError> {
        let Some(connection) = &self.connection else {
            return Err(PinnedError(format!(
                "connection {} names no federation: use {K1}, or {K10} (the default)",
                self.name
            )));
        };
        let (sql, with_metadata) = match sql
            .trim_start()
            .strip_prefix(METADATA)
            .filter(|rest| rest.starts_with(char::is_whitespace))
        {
            Some(rest) => (rest, true),
            None => (sql, false),
        };
        let sql = sql.trim().trim_end_matches(';');
        let result = connection
            .query(sql)
            .await
            .map_err(|e| PinnedError(e.to_string()))?;
        Ok(if with_metadata {
            metadata_rows(&result)
        } else {
            result_rows(&result)
        })
    }

    async fn shutdown(&mut self) {}
}
