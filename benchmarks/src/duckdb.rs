//! The DuckDB configuration: DuckDB's Python package in a child process
//! (`benchmarks/python/duckdb_runner.py`), over the same Parquet files.
//!
//! The Python package is the DuckDB users install; building the `duckdb`
//! crate would compile DuckDB's C++ here, for no better figure. The runner
//! times each query itself, so the pipe to this process is not counted.
//! Its interpreter comes from a virtualenv made on first use with
//! `benchmarks/requirements.txt`, so one command sets everything up.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::error::{BenchError, Result};

/// The benchmark folder (requirements, runner script, RESULTS.md):
/// `CARGO_MANIFEST_DIR` under `cargo run`, else `benchmarks/` of the
/// current folder (the repository root), else the folder it was built in.
/// The last can name another checkout when a cached target/ is shared.
pub fn bench_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("benchmarks");
    if here.join("python/duckdb_runner.py").exists() {
        return std::fs::canonicalize(&here).unwrap_or(here);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Python with DuckDB: `.venv/bin/python` of the workspace, made and
/// filled from `benchmarks/requirements.txt` if it lacks DuckDB.
pub fn ensure_python() -> Result<PathBuf> {
    let root = bench_dir().join("..");
    let python = root.join(".venv/bin/python");
    let has_duckdb = |py: &Path| {
        Command::new(py)
            .args(["-c", "import duckdb, pyarrow"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && has_duckdb(&python) {
        return Ok(python);
    }
    let run = |cmd: &mut Command| -> Result<()> {
        let status = cmd
            .status()
            .map_err(|e| BenchError::DuckDb(format!("cannot run {cmd:?}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(BenchError::DuckDb(format!("{cmd:?} failed ({status})")))
        }
    };
    eprintln!(
        "installing DuckDB into {} ...",
        root.join(".venv").display()
    );
    if !python.exists() {
        run(Command::new("python3")
            .args(["-m", "venv"])
            .arg(root.join(".venv")))?;
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(bench_dir().join("requirements.txt")))?;
    if has_duckdb(&python) {
        Ok(python)
    } else {
        Err(BenchError::DuckDb(format!(
            "{} still cannot import duckdb",
            python.display()
        )))
    }
}

/// A running DuckDB runner over one cohort.
#[derive(Debug)]
pub struct DuckDb {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// DuckDB's version, as the runner reported it.
    pub version: String,
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DuckDb {
    /// Start the runner over the cohort in `data` with `threads` threads.
    pub fn start(python: &Path, data: &Path, threads: usize) -> Result<Self> {
        let mut child = Command::new(python)
            .arg(bench_dir().join("python/duckdb_runner.py"))
            .arg(data)
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::DuckDb(format!("cannot start the runner: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::DuckDb("runner without pipes".into()));
        };
        let mut duck = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            version: String::new(),
        };
        let ready = duck.read()?;
        duck.version = ready
            .get("ready")
            .and_then(|v| v.as_str())
            .ok_or_else(|| BenchError::DuckDb(format!("unexpected greeting {ready}")))?
            .to_string();
        Ok(duck)
    }

    fn read(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| BenchError::DuckDb(format!("runner: {e}")))?;
        if line.is_empty() {
            return Err(BenchError::DuckDb("the runner exited".into()));
        }
        serde_json::from_str(&line)
            .map_err(|e| BenchError::DuckDb(format!("runner said {line:?}: {e}")))
    }

    /// Run `sql` once; returns milliseconds and rows.
    pub fn run(&mut self, name: &str, sql: &str) -> Result<(f64, usize)> {
        let request = serde_json::json!({ "sql": sql, "runs": 1 });
        writeln!(self.stdin, "{request}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| BenchError::DuckDb(format!("runner: {e}")))?;
        let reply = self.read()?;
        if let Some(e) = reply.get("error").and_then(|e| e.as_str()) {
            return Err(BenchError::Query {
                query: name.to_string(),
                config: "duckdb",
                message: e.to_string(),
            });
        }
        let ms = reply["times_ms"][0]
            .as_f64()
            .ok_or_else(|| BenchError::DuckDb(format!("no time in {reply}")))?;
        let rows = reply["rows"].as_u64().unwrap_or(0) as usize;
        Ok((ms, rows))
    }
}
