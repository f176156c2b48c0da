//! The measurements: the workload interleaved over the three
//! configurations, concurrent analysts, and trivial-query latency.
//!
//! Interleaving (federated, centralized, DuckDB, federated, …) spreads
//! the machine's noise over all three alike, so their ratios hold even when
//! absolute times drift during a run.

use std::sync::Arc;
use std::time::Instant;

use ihdsi_cli::client::Connection;
use ihdsi_engine::coordinator::metadata::QUERY_ID;
use ihdsi_engine::tasks::SpawnedTask;

use crate::centralized::Centralized;
use crate::duckdb::DuckDb;
use crate::error::{BenchError, Result};
use crate::federated::{Breakdown, Federation};
use crate::stats::{median, quantile};
use crate::workload::Query;

/// Repetitions of each measurement.
#[derive(Debug, Clone, Copy)]
pub struct Repeats {
    /// Untimed runs first (caches, connections, JIT-free but page cache).
    pub warmup: usize,
    /// Timed runs; medians are taken over these.
    pub runs: usize,
}

/// One query's figures in the three configurations.
#[derive(Debug, Clone)]
pub struct QueryFigures {
    pub name: &'static str,
    pub federated_ms: Vec<f64>,
    pub centralized_ms: Vec<f64>,
    /// Centralized under the sites' session settings (when measured).
    pub site_settings_ms: Vec<f64>,
    pub duckdb_ms: Vec<f64>,
    pub breakdowns: Vec<Breakdown>,
    /// Rows returned: federated (thresholded), centralized, DuckDB.
    pub rows: [usize; 3],
}

impl QueryFigures {
    pub fn federated(&self) -> f64 {
        median(&self.federated_ms)
    }
    pub fn centralized(&self) -> f64 {
        median(&self.centralized_ms)
    }
    pub fn duckdb(&self) -> f64 {
        median(&self.duckdb_ms)
    }
    pub fn site_settings(&self) -> f64 {
        median(&self.site_settings_ms)
    }
    /// Median of one breakdown field over the timed runs.
    pub fn part(&self, f: impl Fn(&Breakdown) -> f64) -> f64 {
        median(&self.breakdowns.iter().map(f).collect::<Vec<_>>())
    }
    /// Bytes received from the sites (the same on every run).
    pub fn bytes(&self) -> u64 {
        self.breakdowns
            .first()
            .map(|b| b.bytes_from_sites)
            .unwrap_or(0)
    }
}

/// Run `q` once through the federation; returns milliseconds, rows and the
/// coordinator's breakdown.
async fn federated_once(
    fed: &Federation,
    conn: &Connection,
    q: &Query,
) -> Result<(f64, usize, Breakdown)> {
    let started = Instant::now();
    let result = conn.query(q.sql).await.map_err(|e| BenchError::Query {
        query: q.name.into(),
        config: "federated",
        message: e.to_string(),
    })?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let id = result
        .schema
        .metadata()
        .get(QUERY_ID)
        .cloned()
        .unwrap_or_default();
    let breakdown = fed.breakdown(&id).ok_or_else(|| BenchError::Query {
        query: q.name.into(),
        config: "federated",
        message: format!("no 'query answered' line for query {id} in the coordinator's log"),
    })?;
    Ok((ms, result.num_rows(), breakdown))
}

/// The local baselines a workload is compared with: the centralized
/// session, optionally the same under the sites' settings, and DuckDB.
#[derive(Debug)]
pub struct Baselines<'a> {
    pub centralized: &'a Centralized,
    pub site_settings: Option<&'a Centralized>,
    pub duckdb: Option<&'a mut DuckDb>,
}

/// The workload, interleaved over the configurations.
pub async fn workload(
    fed: &Federation,
    base: Baselines<'_>,
    queries: &[Query],
    repeats: Repeats,
) -> Result<Vec<QueryFigures>> {
    let Baselines {
        centralized: cent,
        site_settings,
        duckdb: mut duck,
    } = base;
    let conn = fed.connect().await?;
    let mut out = Vec::new();
    for q in queries {
        let mut f = QueryFigures {
            name: q.name,
            federated_ms: Vec::new(),
            centralized_ms: Vec::new(),
            site_settings_ms: Vec::new(),
            duckdb_ms: Vec::new(),
            breakdowns: Vec::new(),
            rows: [0; 3],
        };
        for i in 0..repeats.warmup + repeats.runs {
            let timed = i >= repeats.warmup;
            let (ms, rows, b) = federated_once(fed, &conn, q).await?;
            f.rows[0] = rows;
            if timed {
                f.federated_ms.push(ms);
                f.breakdowns.push(b);
            }
            let started = Instant::now();
            f.rows[1] = cent.run(q.name, q.sql).await?;
            if timed {
                f.centralized_ms
                    .push(started.elapsed().as_secs_f64() * 1000.0);
            }
            if let Some(local) = site_settings {
                let started = Instant::now();
                local.run(q.name, q.sql).await?;
                if timed {
                    f.site_settings_ms
                        .push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            if let Some(duck) = duck.as_deref_mut() {
                let (ms, rows) = duck.run(q.name, q.duckdb_sql())?;
                f.rows[2] = rows;
                if timed {
                    f.duckdb_ms.push(ms);
                }
            }
        }
        check_rows(q, &f, duck.is_some())?;
        eprintln!(
            "  {:<28} federated {:>8.1} ms  centralized {:>8.1} ms  duckdb {:>8.1} ms",
            q.name,
            f.federated(),
            f.centralized(),
            f.duckdb()
        );
        out.push(f);
    }
    Ok(out)
}

/// The configurations must answer the same question: centralized and
/// DuckDB (no threshold) return the same number of rows, and the
/// federation (thresholded) never more. A benchmark of different answers
/// would compare nothing.
fn check_rows(q: &Query, f: &QueryFigures, with_duckdb: bool) -> Result<()> {
    let [federated, centralized, duckdb] = f.rows;
    let message = if with_duckdb && centralized != duckdb {
        format!("centralized returned {centralized} rows, DuckDB {duckdb}")
    } else if federated > centralized {
        format!("federated returned {federated} rows, more than centralized ({centralized})")
    } else {
        return Ok(());
    };
    Err(BenchError::Query {
        query: q.name.into(),
        config: "all",
        message,
    })
}

/// Throughput and latency of `analysts` concurrent analysts.
#[derive(Debug, Clone)]
pub struct Concurrency {
    pub config: &'static str,
    pub analysts: usize,
    pub wall_s: f64,
    pub latencies_ms: Vec<f64>,
}

impl Concurrency {
    pub fn throughput(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.wall_s
    }
    pub fn p50(&self) -> f64 {
        quantile(&self.latencies_ms, 0.5)
    }
    pub fn p99(&self) -> f64 {
        quantile(&self.latencies_ms, 0.99)
    }
}

/// `analysts` analysts, each with their own connection, each running every
/// query of `queries` once (starting at a different one), at the same time;
/// then the same load on the centralized session.
pub async fn concurrency(
    fed: &Federation,
    cent: &Centralized,
    analysts: usize,
    queries: &[Query],
) -> Result<[Concurrency; 2]> {
    let queries: Arc<Vec<Query>> = Arc::new(queries.to_vec());
    let mut conns = Vec::new();
    for i in 0..analysts {
        conns.push(fed.connect_as(&Federation::analyst(i)).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let queries = Arc::clone(&queries);
            SpawnedTask::spawn(async move {
                let mut lat = Vec::new();
                for j in 0..queries.len() {
                    let q = &queries[(i + j) % queries.len()];
                    let t = Instant::now();
                    conn.query(q.sql).await.map_err(|e| BenchError::Query {
                        query: q.name.into(),
                        config: "federated (concurrent)",
                        message: e.to_string(),
                    })?;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, BenchError>(lat)
            })
        })
        .collect();
    let federated = collect("federated", analysts, started, tasks).await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..analysts)
        .map(|i| {
            let (queries, cent) = (Arc::clone(&queries), cent.clone());
            SpawnedTask::spawn(async move {
                let mut lat = Vec::new();
                for j in 0..queries.len() {
                    let q = &queries[(i + j) % queries.len()];
                    let t = Instant::now();
                    cent.run(q.name, q.sql).await?;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok::<_, BenchError>(lat)
            })
        })
        .collect();
    let centralized = collect("centralized", analysts, started, tasks).await?;
    Ok([federated, centralized])
}

async fn collect(
    config: &'static str,
    analysts: usize,
    started: Instant,
    tasks: Vec<SpawnedTask<Result<Vec<f64>>>>,
) -> Result<Concurrency> {
    let mut latencies_ms = Vec::new();
    for t in tasks {
        let lat = t.await.map_err(|e| BenchError::Query {
            query: "concurrent analyst".into(),
            config,
            message: e.to_string(),
        })??;
        latencies_ms.extend(lat);
    }
    Ok(Concurrency {
        config,
        analysts,
        wall_s: started.elapsed().as_secs_f64(),
        latencies_ms,
    })
}

/// Latency samples of one configuration for the trivial query.
#[derive(Debug, Clone)]
pub struct Latency {
    pub config: &'static str,
    pub samples_ms: Vec<f64>,
    /// The coordinator's breakdowns (federated configurations only).
    pub breakdowns: Vec<Breakdown>,
}

impl Latency {
    /// Median of one breakdown field; NaN for local configurations.
    pub fn part(&self, f: impl Fn(&Breakdown) -> f64) -> f64 {
        median(&self.breakdowns.iter().map(f).collect::<Vec<_>>())
    }
}

/// The trivial aggregate through a federation, `runs` times after a
/// warm-up, on one logged-in connection.
pub async fn trivial_federated(
    config: &'static str,
    fed: &Federation,
    q: &Query,
    repeats: Repeats,
) -> Result<Latency> {
    let conn = fed.connect().await?;
    let (mut samples_ms, mut breakdowns) = (Vec::new(), Vec::new());
    for i in 0..repeats.warmup + repeats.runs {
        let (ms, _, b) = federated_once(fed, &conn, q).await?;
        if i >= repeats.warmup {
            samples_ms.push(ms);
            breakdowns.push(b);
        }
    }
    Ok(Latency {
        config,
        samples_ms,
        breakdowns,
    })
}

/// The trivial aggregate on the centralized session and on DuckDB.
pub async fn trivial_local(
    cent: &Centralized,
    duck: &mut DuckDb,
    q: &Query,
    repeats: Repeats,
) -> Result<[Latency; 2]> {
    let (mut c, mut d) = (Vec::new(), Vec::new());
    for i in 0..repeats.warmup + repeats.runs {
        let t = Instant::now();
        cent.run(q.name, q.sql).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let (dms, _) = duck.run(q.name, q.duckdb_sql())?;
        if i >= repeats.warmup {
            c.push(ms);
            d.push(dms);
        }
    }
    Ok([
        Latency {
            config: "centralized",
            samples_ms: c,
            breakdowns: Vec::new(),
        },
        Latency {
            config: "duckdb",
            samples_ms: d,
            breakdowns: Vec::new(),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WORKLOAD;

    fn figures(rows: [usize; 3]) -> QueryFigures {
        QueryFigures {
            name: "q",
            federated_ms: vec![],
            centralized_ms: vec![],
            site_settings_ms: vec![],
            duckdb_ms: vec![],
            breakdowns: vec![],
            rows,
        }
    }

    #[test]
    fn configurations_that_answer_differently_stop_the_run() {
        let q = &WORKLOAD[0];
        assert!(check_rows(q, &figures([3, 5, 5]), true).is_ok());
        assert!(check_rows(q, &figures([3, 5, 0]), false).is_ok());
        let e = check_rows(q, &figures([3, 5, 4]), true).expect_err("duckdb differs");
        assert!(e.to_string().contains("DuckDB 4"), "{e}");
        let e = check_rows(q, &figures([6, 5, 5]), true).expect_err("more federated rows");
        assert!(e.to_string().contains("more than centralized"), "{e}");
    }
}
