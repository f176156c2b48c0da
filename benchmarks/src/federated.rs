//! The federated configuration: one process per site and a coordinator
//! process on loopback, configured the way an operator would (`site.toml`,
//! `federation.toml`), queried through Flight SQL.
//!
//! The processes are this binary itself (`ihdsi-bench ihdsi site …`, the
//! embedded `ihdsi` command line), so `cargo run -p ihdsi-benchmarks` needs
//! no other binary. Configs come from the federation builder
//! ([`ihdsi_cli::federation`]) the demo and the tests use. Secured runs use
//! the demo's material: mutual TLS, permits checked at every site and audit
//! trails with an fsync per record.
//!
//! The coordinator logs one `query answered` line per query with where its
//! time went; [`Federation::breakdown`] reads it back by query id.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ihdsi_catalog::auth::UserEntry;
use ihdsi_catalog::{AuthSection, PrivacyPolicy};
use ihdsi_cli::client::{ClientOptions, Connection, Credentials};
use ihdsi_cli::demo::DEMO_USER;
use ihdsi_cli::demo::security::prepare;
use ihdsi_cli::federation::processes::{Launcher, LineSink, ProcessFederation};
use ihdsi_cli::federation::{FederationSpec, SiteHost};
use ihdsi_flight_server::auth::secrets;

use crate::cohort::Cohort;
use crate::error::{BenchError, Result};

const PASSWORD: &str = "ihdsi-bench";

/// Analyst accounts besides the demo analyst, one per concurrent analyst
/// of the sweeps and the soak.
const ANALYSTS: usize = 32;

/// Where one federated query's time went, as the coordinator logged it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Breakdown {
    pub planning_ms: f64,
    pub audit_ms: f64,
    pub slowest_site_ms: f64,
    pub transfer_ms: f64,
    pub merge_ms: f64,
    pub finish_ms: f64,
    pub bytes_from_sites: u64,
}

impl Breakdown {
    /// Parse the fields of a `query answered` log line; `None` for other lines.
    pub fn parse(line: &str) -> Option<(String, Self)> {
        let rest = &line[line.find("query answered")? + "query answered".len()..];
        let fields: HashMap<&str, &str> = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let ms = |k: &str| -> Option<f64> { Some(fields.get(k)?.parse::<f64>().ok()? / 1000.0) };
        Some((
            fields.get("query_id")?.to_string(),
            Self {
                planning_ms: ms("planning_us")?,
                audit_ms: ms("audit_us")?,
                slowest_site_ms: ms("slowest_site_us")?,
                transfer_ms: ms("transfer_us")?,
                merge_ms: ms("merge_us")?,
                finish_ms: ms("finish_us")?,
                bytes_from_sites: fields.get("bytes_from_sites")?.parse().ok()?,
            },
        ))
    }
}

/// A running federation of processes; killed on drop.
#[derive(Debug)]
pub struct Federation {
    pub uri: String,
    /// Site, coordinator and material files of this run.
    pub dir: PathBuf,
    processes: ProcessFederation,
    answered: Arc<Mutex<HashMap<String, Breakdown>>>,
}

impl Federation {
    /// Start every site of `cohort` and a coordinator, with thresholds `k`
    /// at sites and coordinator; `secured` adds mutual TLS, permits and
    /// audit trails. Files go to a fresh folder under `runs`.
    pub fn start(cohort: &Cohort, runs: &Path, k: u64, secured: bool) -> Result<Self> {
        Self::start_with(cohort, runs, k, secured, &BTreeMap::new())
    }

    /// [`Federation::start`], with the sites of `hosts` on another
    /// backend than DataFusion.
    pub fn start_with(
        cohort: &Cohort,
        runs: &Path,
        k: u64,
        secured: bool,
        hosts: &BTreeMap<String, SiteHost>,
    ) -> Result<Self> {
        let dir = runs.join(format!(
            "{}-{}-{}",
            cohort
                .dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("cohort"),
            if secured { "secured" } else { "plain" },
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
        ));
        let failed = |what: &str, e: &dyn std::fmt::Display| BenchError::Start {
            what: what.into(),
            message: e.to_string(),
            log: dir.clone(),
        };
        let hash = secrets::hash_password(PASSWORD).map_err(|e| failed("coordinator", &e))?;
        let names: Vec<String> = std::iter::once(DEMO_USER.to_string())
            .chain((0..ANALYSTS).map(Self::analyst))
            .collect();
        let auth = AuthSection {
            users: names
                .iter()
                .cloned()
                .map(|name| UserEntry {
                    name,
                    password_hash: hash.clone(),
                })
                .collect(),
            ..AuthSection::default()
        };
        let mut spec = FederationSpec::new(&cohort.dir, &dir, auth);
        spec.site_policy = PrivacyPolicy::threshold(k, false);
        spec.federation_policy = PrivacyPolicy::threshold(k, false);
        spec.site_timeout_secs = 600;
        spec.hosts = hosts.clone();
        if secured {
            let ids: Vec<String> = spec
                .sites()
                .map_err(|e| failed("cohort", &e))?
                .into_iter()
                .map(|s| s.0)
                .collect();
            let security =
                prepare(&dir, &ids, &names).map_err(|e| failed("security material", &e))?;
            spec.security = Some(security);
        }
        let answered = Arc::new(Mutex::new(HashMap::new()));
        let exe = std::env::current_exe().map_err(|e| failed("ihdsi-bench", &e))?;
        let launcher = Launcher {
            program: exe,
            prefix: vec!["ihdsi".into()],
            coordinator_lines: Some(breakdown_sink(Arc::clone(&answered))),
        };
        let processes = spec
            .start_processes(&launcher)
            .map_err(|e| failed("federation", &e))?;
        Ok(Self {
            uri: processes.uri.clone(),
            dir,
            processes,
            answered,
        })
    }

    /// Process ids of the sites and the coordinator (last), for profilers.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.pids()
    }

    /// `site <id>` and `coordinator`, with their process ids.
    pub fn named_pids(&self) -> Vec<(String, u32)> {
        self.processes.named_pids()
    }

    /// The account of concurrent analyst `i` (0-based; wraps past the
    /// accounts there are).
    pub fn analyst(i: usize) -> String {
        format!("analyst-{:02}", i % ANALYSTS + 1)
    }

    /// The analyst password of benchmark federations.
    pub fn password(&self) -> &'static str {
        PASSWORD
    }

    /// A logged-in analyst connection.
    pub async fn connect(&self) -> Result<Connection> {
        self.connect_as(DEMO_USER).await
    }

    /// A connection logged in as `user` (the demo analyst or
    /// [`Federation::analyst`]).
    pub async fn connect_as(&self, user: &str) -> Result<Connection> {
        let credentials = Credentials::Password {
            user: user.into(),
            password: PASSWORD.into(),
        };
        Connection::connect_with(&self.uri, &credentials, &ClientOptions::default())
            .await
            .map_err(|e| BenchError::Start {
                what: "analyst connection".into(),
                message: e.to_string(),
                log: self.dir.join("coordinator.log"),
            })
    }

    /// The coordinator's breakdown of query `id` (its log line is written
    /// before the answer leaves, but read on another thread: wait briefly).
    pub fn breakdown(&self, id: &str) -> Option<Breakdown> {
        for _ in 0..200 {
            if let Some(b) = self
                .answered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id)
            {
                return Some(b);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

/// Parses the coordinator's `query answered` lines into `answered`.
fn breakdown_sink(answered: Arc<Mutex<HashMap<String, Breakdown>>>) -> LineSink {
    Arc::new(move |line: &str| {
        if let Some((id, b)) = Breakdown::parse(line) {
            answered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, b);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_coordinators_answered_line() {
        let line = r#"2026-12-01T05:00:00.1Z  INFO query answered query_id="q-1" analyst="analyst" suppressed=2 sites=3 bytes_from_sites=4096 planning_us=1500 audit_us=200 sites_us=9000 slowest_site_us=7000 transfer_us=2000 merge_us=300 finish_us=400"#;
        let (id, b) = Breakdown::parse(line).expect("parsed");
        assert_eq!(id, "q-1");
        assert_eq!(b.bytes_from_sites, 4096);
        assert_eq!(b.planning_ms, 1.5);
        assert_eq!(b.transfer_ms, 2.0);
        assert!(Breakdown::parse("INFO query planned query_id=\"q\"").is_none());
    }
}
