//! A federation of real processes set up the way an operator would: the
//! `ihdsi` binary makes the certificates (`certs init`), the access body's
//! key (`permit keygen`) and the permits (`permit issue`); each site is its
//! own `ihdsi site --config site.toml` process and the coordinator an
//! `ihdsi coordinator --config federation.toml` process, all on loopback
//! with mutual TLS, permits required and audit trails written.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::process::ihdsi_binary;
use ihdsi_flight_server::demo::site_folders;

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
    /// Extra TOML appended to every site's `[permits]` (deny rules,
    /// allowed purposes).
    pub site_permit_policy: String,
    /// TLS on the analyst-facing port.
    pub analyst_tls: bool,
    /// Per site id: `[site]` lines naming another backend than DataFusion
    /// (`backend = "ballista"`, `url = "df://…"`).
    pub site_backend: BTreeMap<String, String>,
}

/// A running federation of processes; every process is killed on drop.
#[derive(Debug)]
pub struct SecuredFederation {
    pub dir: PathBuf,
    /// `grpc://…` or `grpc+tls://…`.
    pub uri: String,
    /// Site id → `https://127.0.0.1:PORT`.
    pub sites: BTreeMap<String, String>,
    pub coordinator: Child,
    pub site_processes: BTreeMap<String, Child>,
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

/// Spawn `ihdsi ARGS` and wait for the stdout line starting with `prefix`;
/// return the child and the rest of that line. Output keeps draining.
fn spawn_until(args: &[&str], prefix: &str, log: &Path) -> (Child, String) {
    let mut child = Command::new(ihdsi_binary())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn ihdsi");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if let Some(rest) = line.strip_prefix(&wanted) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    let rest = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "ihdsi {args:?} did not print '{prefix}': {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    (child, rest)
}

/// The site ids of a generated cohort.
pub fn site_ids(data: &Path) -> Vec<String> {
    site_folders(data)
        .expect("site folders")
        .into_iter()
        .map(|s| s.0)
        .collect()
}

/// The patient tables a site folder holds.
fn hosted(folder: &Path) -> Vec<String> {
    let mut tables: Vec<String> = std::fs::read_dir(folder)
        .expect("site folder")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".parquet").map(str::to_string)
        })
        .filter(|t| ihdsi_catalog::schema::is_patient_table(t))
        .collect();
    tables.sort();
    tables
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

impl SecuredFederation {
    /// Start the sites of `data` and a coordinator as processes, secured
    /// with `material`, holding `permits` (tokens) for the analyst.
    pub fn start(data: &Path, material: &Material, setup: &Setup, permits: &[String]) -> Self {
        let dir = &material.dir;
        let k = setup.min_group_size.unwrap_or(10);
        let vocabulary = data.join("concept.parquet");
        let mut sites = BTreeMap::new();
        let mut site_processes = BTreeMap::new();
        for (id, folder) in site_folders(data).expect("site folders") {
            let opt_out = match setup.opt_out.get(&id) {
                Some(ids) => {
                    let file = dir.join(format!("opt-out-{id}.txt"));
                    let text: Vec<String> = ids.iter().map(i64::to_string).collect();
                    std::fs::write(&file, format!("# opted out\n{}\n", text.join("\n")))
                        .expect("opt-out file");
                    format!("opt_out = {:?}\n", path(&file))
                }
                None => String::new(),
            };
            let backend = setup.site_backend.get(&id).cloned().unwrap_or_default();
            let toml = format!(
                r#"[site]
id = "{id}"
listen = "127.0.0.1:0"
data = {data:?}
vocabulary = {vocab:?}
{opt_out}
{backend}
[privacy]
min_group_size = {k}
allow_min_max = {mm}

[tls]
ca = "certs/ca.pem"
cert = "certs/site-{id}.pem"
key = "certs/site-{id}.key"
trusted_clients = ["{fp}"]

[audit]
path = "audit/site-{id}.jsonl"

[permits]
{policy}
[[permits.trusted_keys]]
name = "{ISSUER}"
public_key = "{public}"
"#,
                data = path(&folder),
                vocab = path(&vocabulary),
                fp = material.coordinator_fingerprint,
                policy = setup.site_permit_policy,
                public = material.public_key,
                mm = setup.allow_min_max,
            );
            let config = dir.join(format!("site-{id}.toml"));
            std::fs::write(&config, toml).expect("site.toml");
            let prefix = format!("site {id} endpoint: ");
            let log = dir.join(format!("site-{id}.log"));
            let (child, endpoint) =
                spawn_until(&["site", "--config", path(&config)], &prefix, &log);
            sites.insert(id.clone(), (endpoint, hosted(&folder)));
            site_processes.insert(id, child);
        }
        let permit_dir = dir.join("permits");
        std::fs::create_dir_all(&permit_dir).expect("permits dir");
        for (i, token) in permits.iter().enumerate() {
            std::fs::write(permit_dir.join(format!("{i}.permit")), token).expect("permit file");
        }
        let hash = ihdsi_flight_server::auth::secrets::hash_password(PASSWORD).expect("hash");
        let mut toml = format!(
            r#"[coordinator]
listen = "127.0.0.1:0"
vocabulary = {vocab:?}
site_timeout_secs = 120
{analyst_tls}
[privacy]
min_group_size = {k}
allow_min_max = {mm}

[tls]
ca = "certs/ca.pem"
cert = "certs/coordinator.pem"
key = "certs/coordinator.key"

[permits]
dir = "permits"

[audit]
path = "audit/coordinator.jsonl"

[[auth.users]]
name = "{ANALYST}"
password_hash = "{hash}"
"#,
            vocab = path(&vocabulary),
            mm = setup.allow_min_max,
            analyst_tls = if setup.analyst_tls {
                "tls = { cert = \"certs/coordinator.pem\", key = \"certs/coordinator.key\" }"
            } else {
                ""
            },
        );
        for (id, (endpoint, tables)) in &sites {
            toml.push_str(&format!(
                "\n[[sites]]\nid = \"{id}\"\nendpoint = \"{endpoint}\"\ntables = {tables:?}\n"
            ));
        }
        let config = dir.join("federation.toml");
        std::fs::write(&config, toml).expect("federation.toml");
        let log = dir.join("coordinator.log");
        let (coordinator, uri) = spawn_until(
            &["coordinator", "--config", path(&config)],
            "Flight SQL endpoint: ",
            &log,
        );
        Self {
            dir: dir.clone(),
            uri,
            sites: sites.into_iter().map(|(id, (ep, _))| (id, ep)).collect(),
            coordinator,
            site_processes,
        }
    }

    /// A site's log so far.
    pub fn site_log(&self, site: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("site-{site}.log"))).unwrap_or_default()
    }

    /// A site process's id.
    pub fn pid(&self, site: &str) -> u32 {
        self.site_processes[site].id()
    }

    /// The coordinator's audit trail.
    pub fn coordinator_trail(&self) -> PathBuf {
        self.dir.join("audit").join("coordinator.jsonl")
    }

    /// A site's audit trail.
    pub fn site_trail(&self, site: &str) -> PathBuf {
        self.dir.join("audit").join(format!("site-{site}.jsonl"))
    }
}

impl Drop for SecuredFederation {
    fn drop(&mut self) {
        let _ = self.coordinator.kill();
        let _ = self.coordinator.wait();
        for child in self.site_processes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
