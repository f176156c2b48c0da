//! A real `ihdsi demo` process, for tests that must talk to the shipped
//! binary exactly as a client on another machine would (the JDBC replay,
//! the Flight SQL surface).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The password the demo processes of the tests run with.
pub const PASSWORD: &str = "rust-tests-pw";

/// A running `ihdsi demo`; killed on drop.
#[derive(Debug)]
pub struct DemoProcess {
    child: Child,
    /// `grpc://127.0.0.1:PORT`.
    pub uri: String,
    /// The service token the demo printed.
    pub service_token: String,
    /// The start-up lines, up to the service token.
    pub banner: String,
}

/// The `ihdsi` binary: `IHDSI_BIN`, or `target/<profile>/ihdsi` beside this
/// test executable (`target/<profile>/deps/…`).
pub fn ihdsi_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IHDSI_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    profile_dir.join("ihdsi")
}

/// Send `sig` (`-STOP`, `-CONT`, `-TERM`, …) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// CPU time process `pid` has used so far, in clock ticks (user and
/// system, from `/proc/<pid>/stat`; 100 a second on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing parenthesis.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let tick = |i: usize| fields[i - 3].parse::<u64>().expect("ticks");
    tick(14) + tick(15)
}

/// Share of one core process `pid` uses over `window`, from now.
pub async fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_ticks(pid);
    tokio::time::sleep(window).await;
    (cpu_ticks(pid) - before) as f64 / 100.0 / window.as_secs_f64()
}

fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

impl DemoProcess {
    /// Start the demo over the generated cohort in `data`, thresholds 10.
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// [`DemoProcess::start`] with more `ihdsi demo` arguments. Each demo
    /// of the suite keeps its state apart: several run at once over one
    /// cohort, and a run folder has one writer.
    pub fn start_with(data: &Path, extra: &[&str]) -> Self {
        let run_dir = std::env::temp_dir().join(format!(
            "ihdsi-demo-run-{}-{}",
            std::process::id(),
            free_port()
        ));
        Self::start_at(data, &run_dir, extra)
    }

    /// [`DemoProcess::start_with`], keeping its state in `run_dir`.
    pub fn start_at(data: &Path, run_dir: &Path, extra: &[&str]) -> Self {
        let binary = ihdsi_binary();
        assert!(
            binary.exists(),
            "{} is missing: run `cargo build --workspace` first (scripts/test.sh does)",
            binary.display()
        );
        let port = free_port().to_string();
        let mut child = Command::new(&binary)
            .args([
                "demo",
                "--no-examples",
                "--port",
                &port,
                "--password",
                PASSWORD,
            ])
            .arg("--data")
            .arg(data)
            .arg("--run-dir")
            .arg(run_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ihdsi demo");
        let stdout = child.stdout.take().expect("stdout");
        let (uri, service_token, banner) = read_banner(stdout);
        assert!(uri.ends_with(&format!(":{port}")), "{uri}");
        Self {
            child,
            uri,
            service_token,
            banner,
        }
    }
}

/// Read the demo's start-up lines until its endpoint and service token,
/// then keep draining its output on a thread: a closed pipe would make the
/// demo's next `println!` fail and the process exit.
fn read_banner(stdout: ChildStdout) -> (String, String, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut uri, mut token, mut banner) = (None, None, String::new());
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.strip_prefix("Flight SQL endpoint: ") {
                uri = Some(rest.trim().to_string());
            }
            if let Some((_, t)) = line.split_once("service token (demo-service): ") {
                token = Some(t.trim().to_string());
            }
            if let (Some(u), Some(t)) = (&uri, &token) {
                let _ = tx.send((u.clone(), t.clone(), std::mem::take(&mut banner)));
                uri = None;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the demo did not print its endpoint and credentials within 120 s")
}

impl DemoProcess {
    /// SIGTERM, as an orchestrator stops it; how it exited, waiting at
    /// most `within`.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        signal(self.child.id(), "-TERM");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for DemoProcess {
    /// Ctrl-C first, as an operator would: the demo then stops its servers
    /// (a private PostgreSQL among them); a demo that does not exit within
    /// 20 s is killed.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
