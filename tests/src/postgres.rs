//! A real PostgreSQL server for tests: `initdb` in a temporary folder, a
//! free port on loopback, stopped and removed when dropped. Tests never use
//! a server that happens to be running. When the server binaries are
//! missing the test fails and says how to install them (`scripts/test.sh`
//! installs Debian's `postgresql` package itself).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL server of this test process.
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
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IHDSI_PG_BIN") {
        return PathBuf::from(dir);
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
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found under /usr/lib/postgresql: install Debian's postgresql package (scripts/test.sh does), or set IHDSI_PG_BIN")
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
fn server_command(program: &str) -> Command {
    let path = bin_dir().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PgServer {
    /// Initialise and start a server; returns once it accepts connections.
    /// Every statement is logged to the server's log ([`PgServer::log`]).
    pub async fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ihdsi-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("server folder");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot hand {} to the postgres account", dir.display());
        }
        let data = dir.join("data");
        let init = server_command("initdb")
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
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let child = server_command("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "log_statement=all", "-c", "log_destination=stderr"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let server = Self { dir, child, port };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not start: {}",
                self.log()
            );
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

impl Drop for PgServer {
    fn drop(&mut self) {
        // As root the child is `runuser`, not the server: stop the server
        // itself, then reap the child.
        let _ = server_command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
