//! `benchmarks/RESULTS.md`: every figure of a run, with the machine and the
//! commit it came from, the targets checked against it, and the plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cohort::Cohort;
use crate::error::{BenchError, Result};
use crate::stats::{median, quantile};
use crate::sweeps::{Concurrency, Latency, QueryFigures, Repeats};
use crate::workload::{TRIVIAL, WORKLOAD};

/// The workload at one scale of the persons sweep.
#[derive(Debug, Clone)]
pub struct Scale {
    pub cohort: Cohort,
    pub figures: Vec<QueryFigures>,
}

/// The workload at one point of the sites sweep.
#[derive(Debug, Clone)]
pub struct SitesPoint {
    pub sites: usize,
    pub cohort: Cohort,
    pub figures: Vec<QueryFigures>,
}

/// The workload with one site on another backend (the site-backends
/// sweep).
#[derive(Debug, Clone)]
pub struct BackendPoint {
    pub configuration: &'static str,
    pub figures: Vec<QueryFigures>,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Results {
    pub mode: &'static str,
    pub min_group_size: u64,
    pub repeats: Repeats,
    pub duckdb_version: String,
    pub scales: Vec<Scale>,
    pub sites: Vec<SitesPoint>,
    pub backends: Vec<BackendPoint>,
    pub concurrency: Vec<[Concurrency; 2]>,
    pub latency: Vec<Latency>,
    pub latency_persons: u64,
    pub elapsed_s: f64,
}

impl Results {
    pub fn new(mode: &'static str, min_group_size: u64, repeats: Repeats) -> Self {
        Self {
            mode,
            min_group_size,
            repeats,
            duckdb_version: String::new(),
            scales: Vec::new(),
            sites: Vec::new(),
            backends: Vec::new(),
            concurrency: Vec::new(),
            latency: Vec::new(),
            latency_persons: 0,
            elapsed_s: 0.0,
        }
    }

    /// The largest scale of the persons sweep.
    pub fn main_scale(&self) -> Option<&Scale> {
        self.scales.iter().max_by_key(|s| s.cohort.persons)
    }
}

/// Per-query ratios federated/centralized.
pub fn ratios(figures: &[QueryFigures]) -> Vec<f64> {
    figures
        .iter()
        .map(|f| f.federated() / f.centralized())
        .collect()
}

fn latency_p50(r: &Results, prefix: &str) -> f64 {
    r.latency
        .iter()
        .find(|l| l.config.starts_with(prefix))
        .map_or(f64::NAN, |l| quantile(&l.samples_ms, 0.5))
}

/// The targets of the benchmark issue, each with its figure and verdict.
pub fn targets(r: &Results) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    if let Some(s) = r.main_scale() {
        let m = median(&ratios(&s.figures));
        out.push((
            format!(
                "federated/centralized ≤ 1.10, median over the workload ({} persons)",
                human(s.cohort.persons)
            ),
            format!("{m:.2}"),
            m <= 1.10,
        ));
        let worst = s
            .figures
            .iter()
            .map(|f| (f.federated() / f.duckdb(), f.name))
            .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
        out.push((
            format!(
                "no query slower than DuckDB by more than 2× ({} persons)",
                human(s.cohort.persons)
            ),
            format!("worst {:.2}× ({})", worst.0, worst.1),
            worst.0 <= 2.0,
        ));
    }
    let fed = latency_p50(r, "federated (TLS");
    let cent = latency_p50(r, "centralized");
    out.push((
        "trivial-query overhead < 5 ms at p50 (federated − centralized)".into(),
        format!("{:.2} ms ({fed:.2} − {cent:.2})", fed - cent),
        fed - cent < 5.0,
    ));
    let spread = bytes_spread(r);
    out.push((
        "bytes from sites per grouped query independent of persons".into(),
        format!("largest max/min over the persons sweep: {spread:.2}×"),
        spread <= 1.5,
    ));
    out
}

/// The largest ratio, over queries, of the most to the fewest bytes from
/// sites across the persons sweep.
fn bytes_spread(r: &Results) -> f64 {
    (0..WORKLOAD.len())
        .map(|i| {
            let bytes: Vec<f64> = r
                .scales
                .iter()
                .filter_map(|s| s.figures.get(i))
                .map(|f| f.bytes() as f64)
                .collect();
            let max = bytes.iter().copied().fold(0.0, f64::max);
            let min = bytes.iter().copied().fold(f64::INFINITY, f64::min);
            if min > 0.0 { max / min } else { 1.0 }
        })
        .fold(1.0, f64::max)
}

/// 10k, 1M, …
pub fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "{cpu}, {cores} cores available, {mem_gib:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(crate::duckdb::bench_dir())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

fn workload_table(md: &mut String, s: &Scale) {
    let _ = writeln!(
        md,
        "| query | federated ms | centralized ms | DuckDB ms | fed/central | fed/DuckDB | central, site settings ms | bytes from sites | planning | slowest site | transfer | merge | audit | rows fed/central/DuckDB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for f in &s.figures {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {}/{}/{} |",
            f.name,
            f.federated(),
            f.centralized(),
            f.duckdb(),
            f.federated() / f.centralized(),
            f.federated() / f.duckdb(),
            f.site_settings(),
            kib(f.bytes()),
            f.part(|b| b.planning_ms),
            f.part(|b| b.slowest_site_ms),
            f.part(|b| b.transfer_ms),
            f.part(|b| b.merge_ms + b.finish_ms),
            f.part(|b| b.audit_ms),
            f.rows[0],
            f.rows[1],
            f.rows[2]
        );
    }
}

fn persons_section(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "\n## Persons sweep (3 sites)\n\n![persons](plots/persons.svg)\n"
    );
    let _ = writeln!(
        md,
        "| persons | rows | Parquet | workload federated s | centralized s | DuckDB s | median fed/central | median fed/DuckDB |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in &r.scales {
        let sum = |f: &dyn Fn(&QueryFigures) -> f64| s.figures.iter().map(f).sum::<f64>() / 1000.0;
        let duck: Vec<f64> = s
            .figures
            .iter()
            .map(|f| f.federated() / f.duckdb())
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} MiB | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            human(s.cohort.persons),
            s.cohort.rows,
            s.cohort.bytes as f64 / 1024.0 / 1024.0,
            sum(&|f| f.federated()),
            sum(&|f| f.centralized()),
            sum(&|f| f.duckdb()),
            median(&ratios(&s.figures)),
            median(&duck)
        );
    }
    let _ = writeln!(md, "\nBytes received from the sites per query:\n");
    let header: Vec<String> = r.scales.iter().map(|s| human(s.cohort.persons)).collect();
    let _ = writeln!(
        md,
        "| query | {} |\n|---|{}",
        header.join(" | "),
        "---:|".repeat(header.len())
    );
    for (i, q) in WORKLOAD.iter().enumerate() {
        let cells: Vec<String> = r
            .scales
            .iter()
            .map(|s| s.figures.get(i).map_or("–".into(), |f| kib(f.bytes())))
            .collect();
        let _ = writeln!(md, "| {} | {} |", q.name, cells.join(" | "));
    }
}

fn sites_section(md: &mut String, r: &Results) {
    let Some(first) = r.sites.first() else { return };
    let _ = writeln!(
        md,
        "\n## Sites sweep ({} persons split over the sites)\n\n![sites](plots/sites.svg)\n\n| sites | workload federated s | centralized s | median fed/central | median bytes from sites |\n|---:|---:|---:|---:|---:|",
        human(first.cohort.persons)
    );
    for p in &r.sites {
        let fed: f64 = p.figures.iter().map(QueryFigures::federated).sum::<f64>() / 1000.0;
        let cent: f64 = p.figures.iter().map(QueryFigures::centralized).sum::<f64>() / 1000.0;
        let bytes: Vec<f64> = p.figures.iter().map(|f| f.bytes() as f64).collect();
        let _ = writeln!(
            md,
            "| {} | {fed:.2} | {cent:.2} | {:.2} | {} |",
            p.sites,
            median(&ratios(&p.figures)),
            kib(median(&bytes) as u64)
        );
    }
}

fn backends_section(md: &mut String, r: &Results) {
    let Some(scale) = r
        .scales
        .iter()
        .find(|s| s.cohort.persons == r.latency_persons)
        .or_else(|| r.main_scale())
    else {
        return;
    };
    if r.backends.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Site backends ({} persons, 3 sites; the others on DataFusion)\n\nEach configuration is its own federation, measured interleaved with centralized DataFusion; compare the medians of fed/central.\n\n| configuration | workload federated s | centralized s | median fed/central |\n|---|---:|---:|---:|",
        human(scale.cohort.persons)
    );
    let row = |md: &mut String, name: &str, figures: &[QueryFigures]| {
        let fed: f64 = figures.iter().map(QueryFigures::federated).sum::<f64>() / 1000.0;
        let cent: f64 = figures.iter().map(QueryFigures::centralized).sum::<f64>() / 1000.0;
        let _ = writeln!(
            md,
            "| {name} | {fed:.2} | {cent:.2} | {:.2} |",
            median(&ratios(figures))
        );
    };
    row(md, "every site on DataFusion", &scale.figures);
    for p in &r.backends {
        row(md, p.configuration, &p.figures);
    }
}

fn concurrency_section(md: &mut String, r: &Results) {
    if r.concurrency.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Concurrent analysts ({} persons, 3 sites; each analyst runs the workload once)\n\n![concurrency](plots/concurrency.svg)\n\n| analysts | configuration | queries | throughput q/s | p50 ms | p99 ms |\n|---:|---|---:|---:|---:|---:|",
        human(r.latency_persons)
    );
    for pair in &r.concurrency {
        for c in pair {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} |",
                c.analysts,
                c.config,
                c.latencies_ms.len(),
                c.throughput(),
                c.p50(),
                c.p99()
            );
        }
    }
}

fn latency_section(md: &mut String, r: &Results) {
    if r.latency.is_empty() {
        return;
    }
    let cent = latency_p50(r, "centralized");
    let _ = writeln!(
        md,
        "\n## Trivial-query latency ({} persons, `{}`)\n\nBreakdown columns: medians of the coordinator's measurements (ms); *front door* is the rest of the client's time (Flight SQL GetFlightInfo and DoGet, authentication, result encoding).\n\n| configuration | runs | p50 ms | p99 ms | p50 overhead over centralized | planning | audit | slowest site | transfer | merge + finish | front door |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        human(r.latency_persons),
        TRIVIAL.sql
    );
    for l in &r.latency {
        let p50 = quantile(&l.samples_ms, 0.5);
        let parts = [
            l.part(|b| b.planning_ms),
            l.part(|b| b.audit_ms),
            l.part(|b| b.slowest_site_ms),
            l.part(|b| b.transfer_ms),
            l.part(|b| b.merge_ms + b.finish_ms),
        ];
        let front = p50 - parts.iter().sum::<f64>();
        let cells: Vec<String> = parts
            .iter()
            .chain(std::iter::once(&front))
            .map(|v| {
                if v.is_nan() {
                    "–".into()
                } else {
                    format!("{v:.2}")
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:+.2} ms | {} |",
            l.config,
            l.samples_ms.len(),
            p50,
            quantile(&l.samples_ms, 0.99),
            p50 - cent,
            cells.join(" | ")
        );
    }
}

/// The whole report as Markdown.
pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# ihdsi-bench results\n\nProduced by `cargo run --release -p ihdsi-benchmarks -- {}` in {:.0} s on {}.\n\n- machine: {}\n- commit: {}\n- DuckDB {} (Python package, same Parquet files, all cores)\n- federated: one process per site and a coordinator process on loopback, mutual TLS, permits checked at every site, audit trails (fsync per record); minimum group size {} at sites and coordinator. Centralized and DuckDB apply no threshold.\n- each figure is the median of {} timed runs after {} warm-up run(s), the three configurations interleaved query by query; times are end to end at the client (Flight SQL login excluded).\n- breakdown columns come from the coordinator's own measurements (medians, ms); *transfer* is the round trip beyond the slowest site's own work.\n",
        if r.mode == "quick" { "--quick" } else { "" },
        r.elapsed_s,
        chrono::Utc::now().format("%Y-%m-%d"),
        machine(),
        commit(),
        r.duckdb_version,
        r.min_group_size,
        r.repeats.runs,
        r.repeats.warmup
    );
    let _ = writeln!(
        md,
        "## Targets\n\n| target | measured | met |\n|---|---|---|"
    );
    for (t, m, ok) in targets(r) {
        let _ = writeln!(md, "| {t} | {m} | {} |", if ok { "yes" } else { "**no**" });
    }
    if let Some(s) = r.main_scale() {
        let _ = writeln!(
            md,
            "\n## Workload at {} persons, 3 sites\n\n![per-query ratios](plots/queries.svg)\n",
            human(s.cohort.persons)
        );
        workload_table(&mut md, s);
        let _ = writeln!(md, "\nThe queries:\n");
        for q in WORKLOAD {
            let _ = writeln!(md, "- `{}`: {}", q.name, q.what);
        }
    }
    persons_section(&mut md, r);
    sites_section(&mut md, r);
    backends_section(&mut md, r);
    concurrency_section(&mut md, r);
    latency_section(&mut md, r);
    md
}

/// A few lines for the terminal.
pub fn summary(r: &Results) -> String {
    targets(r)
        .into_iter()
        .map(|(t, m, ok)| format!("{} {t}: {m}", if ok { "met   " } else { "MISSED" }))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Write RESULTS.md into `out` (the plots are `crate::plots::write`'s);
/// returns the file written.
pub fn write(out: &Path, r: &Results) -> Result<PathBuf> {
    let path = out.join("RESULTS.md");
    std::fs::write(&path, markdown(r)).map_err(|e| BenchError::Write {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(path)
}
