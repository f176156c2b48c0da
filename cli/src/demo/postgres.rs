//! A private PostgreSQL server for the demo's PostgreSQL-backed sites and
//! for the tests: `initdb` in a folder of its own, a free port on
//! loopback, stopped and removed when dropped. Nothing uses a server that
//! happens to be running. When the server binaries are missing the error
//! says how to install them (`scripts/test.sh` installs Debian's
//! `postgresql` package itself).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{CliError, Result};
use ihdsi_engine::tasks::run_to_end;

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::Serve(format!("private PostgreSQL server: {what}"))
}

/// A running PostgreSQL server of this process.
pub struct PgServer {
    dir: PathBuf,
    child: Child,
    port: u16,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("port", &self.port)
            .finish()
    }
}

/// The folder of `initdb` and `postgres`: `IHDSI_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("IHDSI_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        failed("no server binaries under /usr/lib/postgresql: install Debian's postgresql package (scripts/test.sh does), or set IHDSI_PG_BIN")
    })
}

/// Whether this process runs as root (PostgreSQL refuses to).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// `program` from the server's folder, as the `postgres` account when this
/// process is root.
fn server_command(program: &str) -> Result<Command> {
    let path = bin_dir()?.join(program);
    Ok(if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    })
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed(format!("no free port: {e}")))
}

impl PgServer {
    /// Initialise a server in `dir` (created, and emptied if it exists) and
    /// start it; returns once it accepts connections. Every statement is
    /// logged to the server's log ([`PgServer::log`]).
    pub async fn start(dir: &Path) -> Result<Self> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        let dir = dir.to_path_buf();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(failed(format!(
                    "cannot hand {} to the postgres account",
                    dir.display()
                )));
            }
        }
        let data = dir.join("data");
        let init = server_command("initdb")?
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "ihdsi",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| failed(format!("initdb: {e}")))?;
        if !init.status.success() {
            return Err(failed(format!(
                "initdb: {}",
                String::from_utf8_lossy(&init.stderr).trim()
            )));
        }
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("server.log"))
            .map_err(|e| failed(format!("log: {e}")))?;
        let child = server_command("postgres")?
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "log_statement=all", "-c", "log_destination=stderr"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| failed(format!("postgres: {e}")))?;
        let server = Self { dir, child, port };
        server.wait_ready().await?;
        Ok(server)
    }

    /// A new, empty database `name` on this server; its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        run_to_end(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(failed)?;
        Ok(format!("postgres://ihdsi@127.0.0.1:{}/{name}", self.port))
    }

    async fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            if tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
                .await
                .is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(failed(format!(
                    "did not start within 60 s; its log: {}",
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The connection URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://ihdsi@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's log so far (every statement it ran).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The server's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Stop and remove the servers of earlier demos over `data` that did not
/// get to stop them (a demo killed without Ctrl-C): `data/.postgres-*`.
pub fn stop_stale(data: &Path) {
    let stale = std::fs::read_dir(data)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".postgres-"));
    for entry in stale {
        stop_server(&entry.path());
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// `pg_ctl stop -m immediate` on the server whose folder is `dir`.
fn stop_server(dir: &Path) {
    if let Ok(mut stop) = server_command("pg_ctl") {
        let _ = stop
            .args(["stop", "-m", "immediate", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // As root the child is `runuser`, not the server: stop the server
        // itself, then reap the child.
        stop_server(&self.dir);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
