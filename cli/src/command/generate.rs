//! `ihdsi generate`: the synthetic cohort, written as Parquet.

use std::path::PathBuf;

use clap::Args;
use ihdsi_engine::tasks::SpawnedTask;

use crate::error::{CliError, Result};
use ihdsi_synthetic::{GenerateOptions, generate};

/// Write a deterministic synthetic multi-site OMOP cohort as Parquet.
#[derive(Debug, Args)]
pub(super) struct GenerateArgs {
    /// Output folder: DIR/<site>/<table>.parquet and DIR/concept.parquet.
    #[arg(long)]
    out: PathBuf,
    /// Total persons across all sites.
    #[arg(long, default_value_t = 30_000)]
    persons: u64,
    /// Seed of the generator: the same seed, persons and sites give the
    /// same files, byte for byte.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Comma-separated site ids.
    #[arg(long, default_value = "lu,us,kr", value_delimiter = ',')]
    sites: Vec<String>,
}

impl GenerateArgs {
    /// Generate (on a blocking thread) and report rows per site.
    #[expect(clippy::print_stdout, reason = "the command's report")]
    pub(super) async fn run(self) -> Result<()> {
        let started = std::time::Instant::now();
        let options = GenerateOptions {
            out: self.out,
            persons: self.persons,
            seed: self.seed,
            sites: self.sites,
        };
        let summary = SpawnedTask::spawn_blocking(move || generate(&options))
            .await
            .map_err(|e| CliError::Serve(e.to_string()))??;
        for (site, n, rows) in &summary.sites {
            println!("site {site}: {n} persons, {rows} rows");
        }
        println!("done in {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }
}
