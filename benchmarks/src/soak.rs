//! `ihdsi-bench --soak`: many analysts, a mixed workload, a bounded time,
//! against the secured federation of processes.
//!
//! What it is for is not speed but staying up: every query must answer
//! (0 errors expected), and the processes must stay within bounded memory
//! and threads however long the load lasts. It reports errors by kind,
//! throughput, p50 and p99 latency, and each process's peak resident
//! memory (`VmHWM`) and most threads seen, read from `/proc`.
//!
//! Each analyst has an account of their own (`analyst-01` …), as in a
//! real federation, so the per-analyst concurrency bound
//! (`[resources] max_queries_per_analyst`) is not what limits the load.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::federated::Federation;
use crate::stats::quantile;
use crate::workload::Query;
use ihdsi_engine::tasks::SpawnedTask;

/// One process's peak use over the soak.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessPeak {
    pub name: String,
    pub pid: u32,
    /// Peak resident memory, MiB (`VmHWM`).
    pub peak_rss_mib: f64,
    /// Most threads seen at once.
    pub max_threads: u64,
}

/// What a soak measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    pub analysts: usize,
    pub seconds: f64,
    pub persons: u64,
    /// Latency of every answered query, ms.
    pub latencies_ms: Vec<f64>,
    /// Failed queries by the first 80 characters of their message.
    pub errors: BTreeMap<String, u64>,
    pub processes: Vec<ProcessPeak>,
}

impl SoakReport {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Answered queries per second.
    pub fn throughput(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.seconds
    }

    /// A plain-text summary.
    pub fn render(&self) -> String {
        let mut out = format!(
            "soak: {} analysts for {:.0} s over {} persons: {} answered, {} errors; {:.1} q/s, p50 {:.1} ms, p99 {:.1} ms\n",
            self.analysts,
            self.seconds,
            self.persons,
            self.latencies_ms.len(),
            self.error_count(),
            self.throughput(),
            quantile(&self.latencies_ms, 0.5),
            quantile(&self.latencies_ms, 0.99),
        );
        for p in &self.processes {
            let _ = writeln!(
                out,
                "  {:<12} pid {:<7} peak RSS {:>7.1} MiB, at most {} threads",
                p.name, p.pid, p.peak_rss_mib, p.max_threads
            );
        }
        for (kind, n) in &self.errors {
            let _ = writeln!(out, "  error x{n}: {kind}");
        }
        out
    }
}

/// The `/proc/<pid>/status` fields the soak reads: `VmHWM` in KiB and
/// `Threads`.
fn status(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("Threads:")?))
}

/// Samples every process twice a second until `stop`; returns the peaks.
async fn sample(
    processes: Vec<(String, u32)>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<ProcessPeak> {
    let mut peaks: Vec<ProcessPeak> = processes
        .into_iter()
        .map(|(name, pid)| ProcessPeak {
            name,
            pid,
            peak_rss_mib: 0.0,
            max_threads: 0,
        })
        .collect();
    loop {
        for p in &mut peaks {
            if let Some((hwm_kib, threads)) = status(p.pid) {
                p.peak_rss_mib = p.peak_rss_mib.max(hwm_kib as f64 / 1024.0);
                p.max_threads = p.max_threads.max(threads);
            }
        }
        if *stop.borrow() {
            return peaks;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `analysts` analysts run `queries` in a loop (each from a different
/// start) against `fed` for `duration`.
pub async fn run(
    fed: &Federation,
    persons: u64,
    analysts: usize,
    duration: Duration,
    queries: &[Query],
) -> Result<SoakReport> {
    let mut connections = Vec::with_capacity(analysts);
    for i in 0..analysts {
        connections.push(fed.connect_as(&Federation::analyst(i)).await?);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampler = SpawnedTask::spawn(sample(fed.named_pids(), stopped));
    let queries: Arc<Vec<Query>> = Arc::new(queries.to_vec());
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let queries = Arc::clone(&queries);
            SpawnedTask::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                let mut j = i;
                while Instant::now() < deadline {
                    let q = &queries[j % queries.len()];
                    j += 1;
                    let t = Instant::now();
                    match conn.query(q.sql).await {
                        Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
                        Err(e) => {
                            let kind = format!("{}: {}", q.name, e);
                            *errors.entry(kind.chars().take(80).collect()).or_default() += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut report = SoakReport {
        analysts,
        seconds: 0.0,
        persons,
        latencies_ms: Vec::new(),
        errors: BTreeMap::new(),
        processes: Vec::new(),
    };
    for t in tasks {
        let (latencies, errors) = t.await.map_err(|e| BenchError::Query {
            query: "soak analyst".into(),
            config: "federated (soak)",
            message: e.to_string(),
        })?;
        report.latencies_ms.extend(latencies);
        for (kind, n) in errors {
            *report.errors.entry(kind).or_default() += n;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    report.processes = sampler.await.unwrap_or_default();
    Ok(report)
}
