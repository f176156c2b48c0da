//! A federation of real processes, as an operator runs one: each site is
//! its own `ihdsi site --config site-<id>.toml` process and the
//! coordinator an `ihdsi coordinator --config federation.toml` process,
//! all on loopback. Every process is killed when the federation drops.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ihdsi_catalog::SiteEntry;

use super::{FederationSpec, hosted_tables, write_toml};
use crate::error::{CliError, Result};

/// How long a process may take to print the line saying it listens.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A callback fed every line a process writes to its standard error
/// (after it goes to the log file).
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How to run the `ihdsi` command: the binary itself, or another binary
/// embedding its command line (`ihdsi-bench ihdsi …`).
#[derive(Clone)]
pub struct Launcher {
    pub program: PathBuf,
    /// Arguments before the command (`["ihdsi"]` for the benchmark binary).
    pub prefix: Vec<OsString>,
    /// Lines of the coordinator's standard error, if anyone wants them.
    pub coordinator_lines: Option<LineSink>,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher")
            .field("program", &self.program)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Launcher {
    /// Run `program` as the `ihdsi` command.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            prefix: Vec::new(),
            coordinator_lines: None,
        }
    }
}

/// A running federation of processes.
#[derive(Debug)]
pub struct ProcessFederation {
    /// `grpc://…` or `grpc+tls://…`.
    pub uri: String,
    /// Site id → its Flight endpoint.
    pub sites: BTreeMap<String, String>,
    /// Site id → its process.
    pub site_processes: BTreeMap<String, Child>,
    pub coordinator: Child,
    /// Where the configs and logs are, and how the processes were started:
    /// what a restart needs.
    dir: PathBuf,
    launcher: Launcher,
}

impl Drop for ProcessFederation {
    fn drop(&mut self) {
        let _ = self.coordinator.kill();
        let _ = self.coordinator.wait();
        for child in self.site_processes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ProcessFederation {
    /// Process ids of the sites and the coordinator (last), for profilers.
    pub fn pids(&self) -> Vec<u32> {
        self.named_pids().into_iter().map(|(_, pid)| pid).collect()
    }

    /// `site <id>` and `coordinator`, with their process ids.
    pub fn named_pids(&self) -> Vec<(String, u32)> {
        let sites = self
            .site_processes
            .iter()
            .map(|(id, child)| (format!("site {id}"), child.id()));
        sites
            .chain(std::iter::once((
                "coordinator".to_string(),
                self.coordinator.id(),
            )))
            .collect()
    }
}

impl FederationSpec {
    /// Write every config into [`FederationSpec::dir`] and start the
    /// processes; logs go to `site-<id>.log` and `coordinator.log` there.
    pub fn start_processes(&self, launcher: &Launcher) -> Result<ProcessFederation> {
        let mut sites = BTreeMap::new();
        let mut site_processes = BTreeMap::new();
        let mut entries = Vec::new();
        let stop = |mut running: BTreeMap<String, Child>| {
            for child in running.values_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        };
        for (id, folder) in self.sites()? {
            self.write_opt_out(&id)?;
            let config = self.dir.join(format!("site-{id}.toml"));
            write_toml(&config, &self.site_config(&id, &folder))?;
            let log = self.dir.join(format!("site-{id}.log"));
            let prefix = format!("site {id} endpoint: ");
            let (child, endpoint) = match spawn(launcher, "site", &config, &prefix, &log, None) {
                Ok(started) => started,
                Err(e) => {
                    stop(site_processes);
                    return Err(e);
                }
            };
            site_processes.insert(id.clone(), child);
            sites.insert(id.clone(), endpoint.clone());
            entries.push(SiteEntry {
                id,
                country: String::new(),
                endpoint,
                tables: hosted_tables(&folder),
                patients: None,
            });
        }
        let config = self.dir.join("federation.toml");
        write_toml(&config, &self.federation_config(entries))?;
        let log = self.dir.join("coordinator.log");
        let sink = launcher.coordinator_lines.clone();
        let started = spawn(
            launcher,
            "coordinator",
            &config,
            "Flight SQL endpoint: ",
            &log,
            sink,
        );
        let (coordinator, uri) = match started {
            Ok(started) => started,
            Err(e) => {
                stop(site_processes);
                return Err(e);
            }
        };
        Ok(ProcessFederation {
            uri,
            sites,
            site_processes,
            coordinator,
            dir: self.dir.clone(),
            launcher: launcher.clone(),
        })
    }
}

impl ProcessFederation {
    /// Start site `id` again from its config, changed by `edit` as its
    /// operator would, on the address it had (the coordinator's registry
    /// names it), after it stopped or was killed; a process still running
    /// is killed first. Its log goes on.
    pub fn restart_site(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut ihdsi_catalog::SiteConfig),
    ) -> Result<()> {
        if let Some(mut old) = self.site_processes.remove(id) {
            let _ = old.kill();
            let _ = old.wait();
        }
        let config = self.dir.join(format!("site-{id}.toml"));
        let invalid = |message: String| CliError::Config {
            path: config.clone(),
            message,
        };
        let endpoint = self
            .sites
            .get(id)
            .ok_or_else(|| invalid(format!("no site '{id}' in this federation")))?;
        let address = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |e| e.1);
        let text = std::fs::read_to_string(&config).map_err(|e| invalid(e.to_string()))?;
        let mut site: ihdsi_catalog::SiteConfig =
            toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        edit(&mut site);
        site.site.listen = address.to_string();
        write_toml(&config, &site)?;
        let log = self.dir.join(format!("site-{id}.log"));
        let prefix = format!("site {id} endpoint: ");
        let (child, _) = spawn(&self.launcher, "site", &config, &prefix, &log, None)?;
        self.site_processes.insert(id.to_string(), child);
        Ok(())
    }

    /// Start the coordinator again from its config, changed by `edit` as
    /// its operator would (after it stopped or was killed; a process still
    /// running is killed first). It listens on a new port:
    /// [`ProcessFederation::uri`] says where.
    pub fn restart_coordinator(
        &mut self,
        edit: impl FnOnce(&mut ihdsi_catalog::FederationConfig),
    ) -> Result<()> {
        let _ = self.coordinator.kill();
        let _ = self.coordinator.wait();
        let config = self.dir.join("federation.toml");
        let invalid = |message: String| CliError::Config {
            path: config.clone(),
            message,
        };
        let text = std::fs::read_to_string(&config).map_err(|e| invalid(e.to_string()))?;
        let mut federation: ihdsi_catalog::FederationConfig =
            toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        edit(&mut federation);
        write_toml(&config, &federation)?;
        let log = self.dir.join("coordinator.log");
        let sink = self.launcher.coordinator_lines.clone();
        let prefix = "Flight SQL endpoint: ";
        let (child, uri) = spawn(&self.launcher, "coordinator", &config, prefix, &log, sink)?;
        self.coordinator = child;
        self.uri = uri;
        Ok(())
    }
}

/// Start `<launcher> COMMAND --config CONFIG` and wait for the standard
/// output line starting with `prefix`; return the child and the rest of
/// that line. Both streams keep draining, standard error into `log`.
fn spawn(
    launcher: &Launcher,
    command: &str,
    config: &Path,
    prefix: &str,
    log: &Path,
    sink: Option<LineSink>,
) -> Result<(Child, String)> {
    let failed = |message: String| CliError::Start {
        what: format!("{command} --config {}", config.display()),
        message,
        log: log.to_path_buf(),
    };
    let mut child = Command::new(&launcher.program)
        .args(&launcher.prefix)
        .arg(command)
        .arg("--config")
        .arg(config)
        // Each process logs at its default level (the tests and the
        // benchmarks read its info lines), whatever the caller runs with.
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", launcher.program.display())))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        return Err(failed("no output pipes".into()));
    };
    drain_to_file(stderr, log.to_path_buf(), sink);
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if let Some(rest) = line.trim().strip_prefix(&wanted) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(rest) => Ok((child, rest)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(failed(format!("did not print '{prefix}'")))
        }
    }
}

/// Append `from` to `file` line by line on a thread, each line also to
/// `sink` (a restarted process's log goes on in the same file).
fn drain_to_file(from: impl std::io::Read + Send + 'static, file: PathBuf, sink: Option<LineSink>) {
    std::thread::spawn(move || {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .ok();
        for line in BufReader::new(from).lines().map_while(|l| l.ok()) {
            if let Some(out) = out.as_mut() {
                let _ = writeln!(out, "{line}");
            }
            if let Some(sink) = &sink {
                sink(&line);
            }
        }
    });
}
