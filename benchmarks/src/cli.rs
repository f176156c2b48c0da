//! The `ihdsi-bench` command line.
//!
//! ```text
//! cargo run --release -p ihdsi-benchmarks -- --quick    # < 10 min here
//! cargo run --release -p ihdsi-benchmarks               # the full sweep
//! cargo run --release -p ihdsi-benchmarks -- --ten-million
//! ```
//!
//! `ihdsi-bench ihdsi …` is the embedded `ihdsi` command line, which the
//! benchmark uses to start its own site and coordinator processes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::centralized::Centralized;
use crate::cohort::{self, Cohort};
use crate::duckdb::{self, DuckDb};
use crate::error::{BenchError, Result};
use crate::federated::Federation;
use crate::report::{self, Results, Scale, SitesPoint};
use crate::sweeps::{self, Baselines, Repeats};
use crate::workload::{TRIVIAL, WORKLOAD};

/// The price of federation: federated against centralized DataFusion and
/// DuckDB, bytes from sites, and scaling with persons, sites and analysts.
#[derive(Debug, Parser)]
#[command(name = "ihdsi-bench", version)]
pub struct Args {
    /// The quick sweep (what benchmarks/RESULTS.md is produced with):
    /// 10k/100k/1M persons, 5 timed runs, sites and analysts at 100k.
    #[arg(long)]
    quick: bool,
    /// Add 10M persons to the persons sweep (generation takes a while and
    /// needs about 1.5 GB of disk: 132 MiB per million persons).
    #[arg(long)]
    ten_million: bool,
    /// Override the persons sweep (comma-separated).
    #[arg(long, value_delimiter = ',')]
    persons: Option<Vec<u64>>,
    /// Override the number of timed runs per query and configuration.
    #[arg(long)]
    runs: Option<usize>,
    /// Minimum distinct patients per group, at sites and coordinator.
    #[arg(long, default_value_t = 10)]
    min_group_size: u64,
    /// Where generated cohorts are cached and federations write their files.
    #[arg(long, default_value_os_t = duckdb::bench_dir().join("data"))]
    data: PathBuf,
    /// Where RESULTS.md and the SVG plots go.
    #[arg(long, default_value_os_t = duckdb::bench_dir())]
    out: PathBuf,
    /// Measure nothing: start the secured federation over the cohort of
    /// the first --persons (default 100k), print its URI, password and
    /// process ids, and serve until Ctrl-C (to profile a site or the
    /// coordinator with `perf record -p PID`).
    #[arg(long)]
    serve: bool,
    /// Measure staying up instead of speed: --soak-analysts analysts run
    /// the workload in a loop for SECONDS against the secured federation
    /// over the first --persons (default 20,000); report errors,
    /// throughput, p50/p99 and each process's peak memory. Fails if any
    /// query failed.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<u64>,
    /// Concurrent analysts of --soak.
    #[arg(long, default_value_t = 32)]
    soak_analysts: usize,
}

/// What one invocation measures.
#[derive(Debug, Clone)]
struct Plan {
    persons: Vec<u64>,
    /// Persons of the sites sweep, the concurrency sweep and the latency test.
    sweep_persons: u64,
    site_counts: Vec<usize>,
    analysts: Vec<usize>,
    repeats: Repeats,
    trivial: Repeats,
}

impl Plan {
    fn from(args: &Args) -> Result<Self> {
        let mut persons = args
            .persons
            .clone()
            .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
        if args.ten_million {
            persons.push(10_000_000);
        }
        if persons.iter().any(|p| *p < 1_000) {
            return Err(BenchError::Usage("--persons: at least 1000 each".into()));
        }
        let runs = args.runs.unwrap_or(if args.quick { 5 } else { 10 });
        if runs < 5 {
            return Err(BenchError::Usage(
                "--runs: at least 5 (medians of fewer runs are noise)".into(),
            ));
        }
        // Sites, analysts and latency at 100k (quick) or 1M (full), or at
        // the smallest scale of an overridden sweep that lacks it.
        let preferred = if args.quick { 100_000 } else { 1_000_000 };
        let sweep_persons = if persons.contains(&preferred) {
            preferred
        } else {
            persons.iter().copied().min().unwrap_or(preferred)
        };
        Ok(Self {
            persons,
            sweep_persons,
            site_counts: vec![1, 3, 8],
            analysts: vec![1, 8, 32],
            repeats: Repeats {
                warmup: if args.quick { 1 } else { 2 },
                runs,
            },
            trivial: Repeats {
                warmup: 20,
                runs: if args.quick { 200 } else { 1000 },
            },
        })
    }
}

/// Entry point.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "ihdsi") {
        return ihdsi_cli::command::main_from(
            std::iter::once(std::ffi::OsString::from("ihdsi")).chain(argv.into_iter().skip(2)),
        );
    }
    ihdsi_cli::command::run_to_exit_code(run(Args::parse_from(argv)))
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let plan = Plan::from(&args)?;
    if args.serve {
        return serve(&args, &plan).await;
    }
    if let Some(seconds) = args.soak {
        return soak(&args, seconds).await;
    }
    let python = duckdb::ensure_python()?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runs_dir = args.data.join("runs");
    let k = args.min_group_size;
    let three = cohort::site_ids(3);
    let mut results = Results::new(if args.quick { "quick" } else { "full" }, k, plan.repeats);
    for &persons in &plan.persons {
        let cohort = cohort::ensure(&args.data, persons, &three)?;
        eprintln!("== {persons} persons, 3 sites: workload");
        let fed = Federation::start(&cohort, &runs_dir, k, true)?;
        let cent = Centralized::open(&cohort).await?;
        let site_settings = Centralized::open_with_site_settings(&cohort).await?;
        let mut duck = DuckDb::start(&python, &cohort.dir, threads)?;
        results.duckdb_version = duck.version.clone();
        let base = Baselines {
            centralized: &cent,
            site_settings: Some(&site_settings),
            duckdb: Some(&mut duck),
        };
        let figures = sweeps::workload(&fed, base, WORKLOAD, plan.repeats).await?;
        if persons == plan.sweep_persons {
            sweep_at(
                &plan,
                &mut results,
                &cohort,
                &fed,
                &cent,
                &mut duck,
                &runs_dir,
                k,
            )
            .await?;
            results.backends =
                crate::backends::sweep(&cohort, &runs_dir, k, &cent, plan.repeats).await?;
        }
        results.scales.push(Scale { cohort, figures });
    }
    for &n in &plan.site_counts {
        eprintln!("== {} persons, {n} sites: workload", plan.sweep_persons);
        let cohort = cohort::ensure(&args.data, plan.sweep_persons, &cohort::site_ids(n))?;
        let fed = Federation::start(&cohort, &runs_dir, k, true)?;
        let cent = Centralized::open(&cohort).await?;
        let base = Baselines {
            centralized: &cent,
            site_settings: None,
            duckdb: None,
        };
        let figures = sweeps::workload(&fed, base, WORKLOAD, plan.repeats).await?;
        results.sites.push(SitesPoint {
            sites: n,
            cohort,
            figures,
        });
    }
    results.elapsed_s = started.elapsed().as_secs_f64();
    let mut written = crate::plots::write(&args.out.join("plots"), &results)?;
    written.push(report::write(&args.out, &results)?);
    for path in written {
        println!("wrote {}", path.display());
    }
    println!("{}", report::summary(&results));
    Ok(())
}

/// `--serve`: a federation to profile by hand.
async fn serve(args: &Args, plan: &Plan) -> Result<()> {
    let persons = args.persons.as_ref().map_or(plan.sweep_persons, |p| p[0]);
    let cohort = cohort::ensure(&args.data, persons, &cohort::site_ids(3))?;
    let fed = Federation::start(&cohort, &args.data.join("runs"), args.min_group_size, true)?;
    println!("Flight SQL endpoint: {}", fed.uri);
    println!(
        "user: {} password: {}",
        ihdsi_cli::demo::DEMO_USER,
        fed.password()
    );
    println!("process ids (sites, then coordinator): {:?}", fed.pids());
    println!("files: {}", fed.dir.display());
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

/// `--soak`: the soak, its report on stdout (and in `--out` as
/// `SOAK.md`), and an error if any query failed.
async fn soak(args: &Args, seconds: u64) -> Result<()> {
    let persons = args.persons.as_ref().map_or(20_000, |p| p[0]);
    let cohort = cohort::ensure(&args.data, persons, &cohort::site_ids(3))?;
    let fed = Federation::start(&cohort, &args.data.join("runs"), args.min_group_size, true)?;
    eprintln!(
        "== soak: {} analysts for {seconds} s over {persons} persons",
        args.soak_analysts
    );
    let report = crate::soak::run(
        &fed,
        persons,
        args.soak_analysts,
        std::time::Duration::from_secs(seconds),
        WORKLOAD,
    )
    .await?;
    let text = report.render();
    println!("{text}");
    let path = args.out.join("SOAK.md");
    std::fs::create_dir_all(&args.out)
        .and_then(|()| std::fs::write(&path, format!("```text\n{text}```\n")))
        .map_err(|e| BenchError::Write {
            path: path.clone(),
            message: e.to_string(),
        })?;
    match report.error_count() {
        0 => Ok(()),
        n => Err(BenchError::Query {
            query: format!("{n} of the soak's queries"),
            config: "federated (soak)",
            message: "failed; see the errors above".into(),
        }),
    }
}

/// The concurrency sweep and the trivial-query latency test on `cohort`.
#[allow(clippy::too_many_arguments)]
async fn sweep_at(
    plan: &Plan,
    results: &mut Results,
    cohort: &Cohort,
    fed: &Federation,
    cent: &Centralized,
    duck: &mut DuckDb,
    runs_dir: &std::path::Path,
    k: u64,
) -> Result<()> {
    for &n in &plan.analysts {
        eprintln!("== {} persons: {n} concurrent analysts", cohort.persons);
        let [f, c] = sweeps::concurrency(fed, cent, n, WORKLOAD).await?;
        eprintln!(
            "  federated {:.1} q/s p50 {:.1} ms p99 {:.1} ms; centralized {:.1} q/s",
            f.throughput(),
            f.p50(),
            f.p99(),
            c.throughput()
        );
        results.concurrency.push([f, c]);
    }
    eprintln!("== {} persons: trivial-query latency", cohort.persons);
    results.latency.push(
        sweeps::trivial_federated(
            "federated (TLS, permits, audit)",
            fed,
            &TRIVIAL,
            plan.trivial,
        )
        .await?,
    );
    let plain = Federation::start(cohort, runs_dir, k, false)?;
    results.latency.push(
        sweeps::trivial_federated(
            "federated (plaintext, no audit)",
            &plain,
            &TRIVIAL,
            plan.trivial,
        )
        .await?,
    );
    drop(plain);
    let [c, d] = sweeps::trivial_local(cent, duck, &TRIVIAL, plan.trivial).await?;
    results.latency.push(c);
    results.latency.push(d);
    results.latency_persons = cohort.persons;
    Ok(())
}
