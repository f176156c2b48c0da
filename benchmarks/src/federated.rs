//! The federated configuration: one process per site and a coordinator
//! process on loopback, configured the way an operator would (`site.toml`,
//! `federation.toml`), queried through Flight SQL.
//!
//! The processes are this binary itself (`ihdsi-bench ihdsi site …`, the
//! embedded `ihdsi` command line), so `cargo run -p ihdsi-benchmarks` needs
//! no other binary. Secured runs use the demo's material: mutual TLS,
//! permits checked at every site and audit trails with an fsync per record.
//!
//! The coordinator logs one `query answered` line per query with where its
//! time went; [`Federation::breakdown`] reads it back by query id.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ihdsi_catalog::schema;
use ihdsi_flight_server::client::{ClientOptions, Connection, Credentials};
use ihdsi_flight_server::demo::security::DemoSecurity;
use ihdsi_flight_server::demo::{DEMO_USER, site_folders};

use crate::cohort::Cohort;
use crate::error::{BenchError, Result};

const PASSWORD: &str = "ihdsi-bench";

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
    children: Vec<Child>,
    answered: Arc<Mutex<HashMap<String, Breakdown>>>,
}

impl Drop for Federation {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start `ihdsi-bench ihdsi ARGS` and wait for the stdout line starting
/// with `prefix`; returns the child and the rest of that line. Its stderr
/// goes to `log` (and, with `answered`, its breakdown lines into the map).
fn spawn(
    args: &[&str],
    prefix: &str,
    log: &Path,
    answered: Option<Arc<Mutex<HashMap<String, Breakdown>>>>,
) -> Result<(Child, String)> {
    let failed = |message: String| BenchError::Start {
        what: args.join(" "),
        message,
        log: log.to_path_buf(),
    };
    let exe = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
    let mut child = Command::new(exe)
        .arg("ihdsi")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("no stdout".into()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| failed("no stderr".into()))?;
    drain_to_file(stderr, log.to_path_buf(), answered);
    // Keep reading stdout after the line, so the child never writes to a
    // closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix_owned = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if let Some(rest) = line.trim().strip_prefix(&prefix_owned) {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    match rx.recv().ok() {
        Some(rest) => Ok((child, rest)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(failed("exited before it was listening".into()))
        }
    }
}

/// Copy `from` to `file` line by line on a thread; with `answered`, parse
/// the coordinator's `query answered` lines into it.
fn drain_to_file(
    from: impl std::io::Read + Send + 'static,
    file: PathBuf,
    answered: Option<Arc<Mutex<HashMap<String, Breakdown>>>>,
) {
    std::thread::spawn(move || {
        let mut out = std::fs::File::create(&file).ok();
        for line in BufReader::new(from).lines().map_while(|l| l.ok()) {
            if let Some(out) = out.as_mut() {
                let _ = writeln!(out, "{line}");
            }
            if let (Some(map), Some((id, b))) = (&answered, Breakdown::parse(&line)) {
                map.lock().unwrap_or_else(|p| p.into_inner()).insert(id, b);
            }
        }
    });
}

fn path_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

impl Federation {
    /// Start every site of `cohort` and a coordinator, with thresholds `k`
    /// at sites and coordinator; `secured` adds mutual TLS, permits and
    /// audit trails. Files go to a fresh folder under `runs`.
    pub fn start(cohort: &Cohort, runs: &Path, k: u64, secured: bool) -> Result<Self> {
        Self::start_with(cohort, runs, k, secured, &BTreeMap::new())
    }

    /// [`Federation::start`], with `site_lines[id]` added to the `[site]`
    /// section of that site's `site.toml` (another backend: `backend = …`,
    /// `url = …`).
    pub fn start_with(
        cohort: &Cohort,
        runs: &Path,
        k: u64,
        secured: bool,
        site_lines: &BTreeMap<String, String>,
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
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|e| BenchError::Write {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        };
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::Write {
            path: dir.clone(),
            message: e.to_string(),
        })?;
        let sites = site_folders(&cohort.dir).map_err(|e| BenchError::Cohort {
            path: cohort.dir.clone(),
            message: e.to_string(),
        })?;
        let ids: Vec<String> = sites.iter().map(|s| s.0.clone()).collect();
        let security = if secured {
            Some(
                DemoSecurity::prepare(&dir, &ids, &[DEMO_USER.to_string()]).map_err(|e| {
                    BenchError::Start {
                        what: "security material".into(),
                        message: e.to_string(),
                        log: dir.clone(),
                    }
                })?,
            )
        } else {
            None
        };
        let vocabulary = cohort.dir.join("concept.parquet");
        let mut children = Vec::new();
        let mut entries = String::new();
        for (id, folder) in &sites {
            let mut toml = format!(
                "[site]\nid = \"{id}\"\nlisten = \"127.0.0.1:0\"\ndata = {}\nvocabulary = {}\n{}\n[privacy]\nmin_group_size = {k}\n",
                path_str(folder),
                path_str(&vocabulary),
                site_lines.get(id).map_or("", String::as_str)
            );
            if let Some(sec) = &security {
                toml.push_str(&site_security(sec, id)?);
            }
            let config = dir.join(format!("site-{id}.toml"));
            write(&config, &toml)?;
            let log = dir.join(format!("site-{id}.log"));
            let config_arg = config.display().to_string();
            let (child, endpoint) = spawn(
                &["site", "--config", &config_arg],
                &format!("site {id} endpoint: "),
                &log,
                None,
            )?;
            children.push(child);
            let tables: Vec<&str> = schema::patient_tables()
                .map(|t| t.name)
                .filter(|t| folder.join(format!("{t}.parquet")).exists())
                .collect();
            entries.push_str(&format!(
                "\n[[sites]]\nid = \"{id}\"\nendpoint = \"{endpoint}\"\ntables = {tables:?}\n"
            ));
        }
        let hash = ihdsi_flight_server::auth::secrets::hash_password(PASSWORD).map_err(|e| {
            BenchError::Start {
                what: "coordinator".into(),
                message: e.to_string(),
                log: dir.clone(),
            }
        })?;
        let mut toml = format!(
            "[coordinator]\nlisten = \"127.0.0.1:0\"\nvocabulary = {}\nsite_timeout_secs = 600\n\n[privacy]\nmin_group_size = {k}\n\n[[auth.users]]\nname = \"{DEMO_USER}\"\npassword_hash = \"{hash}\"\n",
            path_str(&vocabulary)
        );
        if secured {
            toml.push_str("\n[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/coordinator.pem\"\nkey = \"certs/coordinator.key\"\n\n[permits]\ndir = \"permits\"\n\n[audit]\npath = \"audit/coordinator.jsonl\"\n");
        }
        toml.push_str(&entries);
        let config = dir.join("federation.toml");
        write(&config, &toml)?;
        let log = dir.join("coordinator.log");
        let config_arg = config.display().to_string();
        let answered = Arc::new(Mutex::new(HashMap::new()));
        let (child, uri) = spawn(
            &["coordinator", "--config", &config_arg],
            "Flight SQL endpoint: ",
            &log,
            Some(Arc::clone(&answered)),
        )?;
        children.push(child);
        Ok(Self {
            uri,
            dir,
            children,
            answered,
        })
    }

    /// Process ids of the sites and the coordinator (last), for profilers.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// The analyst password of benchmark federations.
    pub fn password(&self) -> &'static str {
        PASSWORD
    }

    /// A logged-in analyst connection.
    pub async fn connect(&self) -> Result<Connection> {
        let credentials = Credentials::Password {
            user: DEMO_USER.into(),
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

/// `[tls]`, `[audit]` and `[permits]` of a secured site.
fn site_security(sec: &DemoSecurity, id: &str) -> Result<String> {
    let tls = sec
        .site(id)
        .ok_or_else(|| BenchError::Usage(format!("no TLS material for {id}")))?;
    let key = sec
        .site_permits
        .trusted_keys
        .first()
        .ok_or_else(|| BenchError::Usage("no access-body key".into()))?;
    Ok(format!(
        "\n[tls]\nca = {}\ncert = {}\nkey = {}\ntrusted_clients = {:?}\n\n[audit]\npath = {}\n\n[permits]\n[[permits.trusted_keys]]\nname = \"{}\"\npublic_key = \"{}\"\n",
        path_str(&tls.ca),
        path_str(&tls.cert),
        path_str(&tls.key),
        tls.trusted_clients,
        path_str(&sec.audit_dir.join(format!("site-{id}.jsonl"))),
        key.name,
        key.public_key
    ))
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
