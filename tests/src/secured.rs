//! A federation of real processes set up the way an operator would: the
//! `ihdsi` binary makes the certificates (`certs init`), the access body's
//! key (`permit keygen`) and the permits (`permit issue`); each site is its
//! own `ihdsi site --config site.toml` process and the coordinator an
//! `ihdsi coordinator --config federation.toml` process, all on loopback
//! with mutual TLS, permits required and audit trails written. The
//! configs come from the federation builder ([`ihdsi_cli::federation`]),
//! the one the demo and the benchmarks use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::process::ihdsi_binary;
use ihdsi_catalog::auth::UserEntry;
use ihdsi_catalog::permit::{AccessBodyKey, DenyRule, Purpose, SitePermitPolicy};
use ihdsi_catalog::{AuthSection, PrivacyPolicy};
use ihdsi_cli::federation::processes::{Launcher, ProcessFederation};
use ihdsi_cli::federation::site_folders;
use ihdsi_cli::federation::{FederationSpec, Security, SiteHost};

/// The access body's key name in these federations.
pub const ISSUER: &str = "test-hdab";
/// The analyst of these federations and their password.
pub const ANALYST: &str = "dr.kim";
pub const PASSWORD: &str = "secured-tests-pw";

/// How to set up a secured federation.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Minimum group size at the sites and the federation (default 10).
    pub min_group_size: Option<u64>,
    /// Allow MIN and MAX everywhere.
    pub allow_min_max: bool,
    /// Per site id: person ids that opted out.
    pub opt_out: BTreeMap<String, Vec<i64>>,
    /// Purposes every site serves (empty: every EHDS purpose).
    pub allowed_purposes: Vec<Purpose>,
    /// Every site's narrowing rules.
    pub deny: Vec<DenyRule>,
    /// TLS on the analyst-facing port.
    pub analyst_tls: bool,
    /// Per site id: another backend than DataFusion.
    pub hosts: BTreeMap<String, SiteHost>,
    /// Seconds the coordinator waits for a site (default 120).
    pub site_timeout_secs: Option<u64>,
    /// dp mode at the coordinator (budget ρ per permit, ledger in the
    /// audit folder, no fixed response time); the sites keep threshold
    /// mode with k = 1 (mode A of the anchors).
    pub dp_budget: Option<f64>,
}

/// A running federation of processes; every process is killed on drop.
#[derive(Debug)]
pub struct SecuredFederation {
    pub dir: PathBuf,
    /// `grpc://…` or `grpc+tls://…`.
    pub uri: String,
    /// Site id → `https://127.0.0.1:PORT`.
    pub sites: BTreeMap<String, String>,
    /// The processes, killed when this drops.
    pub processes: ProcessFederation,
}

/// Run `ihdsi ARGS` to completion.
pub fn ihdsi(args: &[&str]) -> Output {
    Command::new(ihdsi_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ihdsi")
}

/// Run `ihdsi ARGS`, which must succeed; its standard output.
pub fn ihdsi_ok(args: &[&str]) -> String {
    let out = ihdsi(args);
    assert!(
        out.status.success(),
        "ihdsi {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The site ids of a generated cohort.
pub fn site_ids(data: &Path) -> Vec<String> {
    site_folders(data)
        .expect("site folders")
        .into_iter()
        .map(|s| s.0)
        .collect()
}

/// The secured federations' analyst, logged in at `uri` (plaintext
/// analyst port, the coordinator's own permit choice).
pub async fn connect_analyst(uri: &str) -> ihdsi_cli::client::Connection {
    let credentials = ihdsi_cli::client::Credentials::Password {
        user: ANALYST.into(),
        password: PASSWORD.into(),
    };
    ihdsi_cli::client::Connection::connect_with(
        uri,
        &credentials,
        &ihdsi_cli::client::ClientOptions::default(),
    )
    .await
    .expect("connect")
}

/// The pieces an operator makes before starting anything.
#[derive(Debug, Clone)]
pub struct Material {
    pub dir: PathBuf,
    pub certs: PathBuf,
    pub coordinator_fingerprint: String,
    pub signing_key: PathBuf,
    pub public_key: String,
    pub sites: Vec<String>,
}

impl Material {
    /// `certs init` and `permit keygen` into a fresh folder.
    pub fn make(name: &str, sites: &[String]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ihdsi-secured-{name}-{}-{}",
            std::process::id(),
            ihdsi_flight_server::auth::secrets::new_token()[..8].to_owned()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let certs = dir.join("certs");
        let out = ihdsi_ok(&[
            "certs",
            "init",
            "--out",
            path(&certs),
            "--sites",
            &sites.join(","),
        ]);
        let coordinator_fingerprint = out
            .lines()
            .find(|l| l.starts_with("sha256:"))
            .expect("fingerprint line")
            .to_string();
        let signing_key = dir.join("hdab.key");
        let out = ihdsi_ok(&[
            "permit",
            "keygen",
            "--out",
            path(&signing_key),
            "--name",
            ISSUER,
        ]);
        let public_key = out
            .lines()
            .find_map(|l| l.strip_prefix("public_key = \""))
            .map(|l| l.trim_end_matches('"').to_string())
            .expect("public key line");
        Self {
            dir,
            certs,
            coordinator_fingerprint,
            signing_key,
            public_key,
            sites: sites.to_vec(),
        }
    }

    /// `permit issue` with the federation's key; `overrides` replace or
    /// add flags (an empty value is a switch such as `--commercial`).
    pub fn permit(&self, id: &str, overrides: &[(&str, &str)]) -> String {
        self.permit_signed_by(&self.signing_key, id, overrides)
    }

    /// `permit issue` signed by `key` under this federation's issuer name.
    pub fn permit_signed_by(&self, key: &Path, id: &str, overrides: &[(&str, &str)]) -> String {
        let mut flags: BTreeMap<&str, String> = BTreeMap::new();
        flags.insert("--key", path(key).to_string());
        flags.insert("--issuer", ISSUER.to_string());
        flags.insert("--id", id.to_string());
        flags.insert("--holder", ANALYST.to_string());
        flags.insert("--purpose", "scientific_research".to_string());
        flags.insert("--tables", "all".to_string());
        flags.insert("--sites", self.sites.join(","));
        for (flag, value) in overrides {
            flags.insert(flag, value.to_string());
        }
        let mut args = vec!["permit".to_string(), "issue".to_string()];
        for (flag, value) in flags {
            args.push(flag.to_string());
            if !value.is_empty() {
                args.push(value);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ihdsi_ok(&args).trim().to_string()
    }
}

impl Material {
    /// Where a dp federation over this material keeps its budget ledger.
    pub fn ledger(&self) -> PathBuf {
        self.dir.join("audit").join("budget.jsonl")
    }

    /// The builder's view of this material, narrowed by `setup`.
    pub fn security(&self, setup: &Setup) -> Security {
        Security {
            certs: self.certs.clone(),
            coordinator_fingerprint: self.coordinator_fingerprint.clone(),
            site_permits: SitePermitPolicy {
                trusted_keys: vec![AccessBodyKey {
                    name: ISSUER.into(),
                    public_key: self.public_key.clone(),
                }],
                allowed_purposes: setup.allowed_purposes.clone(),
                deny: setup.deny.clone(),
            },
            permits_dir: self.dir.join("permits"),
            audit_dir: self.dir.join("audit"),
            analyst_tls: setup.analyst_tls,
        }
    }
}

impl SecuredFederation {
    /// Start the sites of `data` and a coordinator as processes, secured
    /// with `material`, holding `permits` (tokens) for the analyst.
    pub fn start(data: &Path, material: &Material, setup: &Setup, permits: &[String]) -> Self {
        let dir = &material.dir;
        let permit_dir = dir.join("permits");
        std::fs::create_dir_all(&permit_dir).expect("permits dir");
        for (i, token) in permits.iter().enumerate() {
            std::fs::write(permit_dir.join(format!("{i}.permit")), token).expect("permit file");
        }
        let hash = ihdsi_flight_server::auth::secrets::hash_password(PASSWORD).expect("hash");
        let auth = AuthSection {
            users: vec![UserEntry {
                name: ANALYST.into(),
                password_hash: hash,
            }],
            ..AuthSection::default()
        };
        let policy =
            PrivacyPolicy::threshold(setup.min_group_size.unwrap_or(10), setup.allow_min_max);
        let mut spec = FederationSpec::new(data, dir, auth);
        spec.site_policy = policy.clone();
        spec.federation_policy = policy;
        if let Some(budget) = setup.dp_budget {
            spec.federation_policy = crate::dp::dp_policy(&material.ledger(), budget);
            spec.site_policy = PrivacyPolicy::threshold(1, false);
        }
        if let Some(secs) = setup.site_timeout_secs {
            spec.site_timeout_secs = secs;
        }
        spec.security = Some(material.security(setup));
        spec.hosts = setup.hosts.clone();
        spec.opt_out = setup.opt_out.clone();
        let processes = spec
            .start_processes(&Launcher::new(ihdsi_binary()))
            .unwrap_or_else(|e| panic!("start the secured federation: {e}"));
        Self {
            dir: dir.clone(),
            uri: processes.uri.clone(),
            sites: processes.sites.clone(),
            processes,
        }
    }

    /// A site's log so far.
    pub fn site_log(&self, site: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("site-{site}.log"))).unwrap_or_default()
    }

    /// A site process's id.
    pub fn pid(&self, site: &str) -> u32 {
        self.processes.site_processes[site].id()
    }

    /// The coordinator's audit trail.
    pub fn coordinator_trail(&self) -> PathBuf {
        self.dir.join("audit").join("coordinator.jsonl")
    }

    /// A site's audit trail.
    pub fn site_trail(&self, site: &str) -> PathBuf {
        self.dir.join("audit").join(format!("site-{site}.jsonl"))
    }

    /// The records of a trail so far, parsed.
    pub fn records(trail: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(trail)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit record is JSON"))
            .collect()
    }

    /// The coordinator's id of the last query whose text was `sql`, from
    /// the `received` records of its trail.
    pub fn query_id_of(&self, sql: &str) -> Option<String> {
        Self::records(&self.coordinator_trail())
            .into_iter()
            .rev()
            .find(|r| r["event"] == "received" && r["sql"] == sql)
            .and_then(|r| r["query_id"].as_str().map(str::to_string))
    }

    /// `site`'s subplan records of query `query_id`, waiting up to
    /// `within` for one whose decision is not `received`/`admitted`.
    pub async fn subplan_ends(
        &self,
        site: &str,
        query_id: &str,
        within: std::time::Duration,
    ) -> Vec<serde_json::Value> {
        let started = std::time::Instant::now();
        loop {
            let ends: Vec<serde_json::Value> = Self::records(&self.site_trail(site))
                .into_iter()
                .filter(|r| r["event"] == "subplan" && r["query_id"] == query_id)
                .collect();
            if !ends.is_empty() || started.elapsed() > within {
                return ends;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// `ihdsi audit verify` on `trail`: (success, what it printed).
pub fn verify_trail(trail: &Path) -> (bool, String) {
    let out = ihdsi(&["audit", "verify", path(trail)]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
