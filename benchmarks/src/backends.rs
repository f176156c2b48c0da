//! The site-backends sweep: the workload with one site's subplans run
//! inside PostgreSQL, and with one site's on an Apache Ballista cluster,
//! the other sites on DataFusion. The same cohort with every site on
//! DataFusion is the persons sweep's federation at this scale; each
//! configuration's ratio to centralized DataFusion is measured in its own
//! interleaved run, so the two ratios compare on a shared, noisy machine.
//!
//! The database and the cluster are private to the run and on loopback,
//! like the site processes: PostgreSQL from the server binaries that
//! `scripts/test.sh` installs (`initdb` in a temporary folder), Ballista's
//! scheduler and one executor in this process.

use std::collections::BTreeMap;
use std::path::Path;

use ihdsi_catalog::registry::SiteBackendKind;
use ihdsi_cli::demo::postgres::PgServer;
use ihdsi_cli::federation::SiteHost;
use ihdsi_engine::site::ballista::cluster::StandaloneCluster;
use ihdsi_engine::site::postgres::load::load_site;

use crate::centralized::Centralized;
use crate::cohort::Cohort;
use crate::error::{BenchError, Result};
use crate::federated::Federation;
use crate::report::BackendPoint;
use crate::sweeps::{self, Baselines, Repeats};
use crate::workload::WORKLOAD;

/// The site that runs inside PostgreSQL, and the one on Ballista.
const POSTGRES_SITE: &str = "lu";
const BALLISTA_SITE: &str = "kr";

fn failed(what: &str, log: &Path) -> impl Fn(String) -> BenchError {
    let (what, log) = (what.to_string(), log.to_path_buf());
    move |message| BenchError::Start {
        what: what.clone(),
        message,
        log: log.clone(),
    }
}

/// Run the workload over `cohort` (three sites) in each mixed
/// configuration.
pub async fn sweep(
    cohort: &Cohort,
    runs: &Path,
    k: u64,
    centralized: &Centralized,
    repeats: Repeats,
) -> Result<Vec<BackendPoint>> {
    let mut points = Vec::new();

    // Under the system's temporary folder, not the run's: when root, the
    // server runs as the `postgres` account, which must reach its folder.
    let dir = std::env::temp_dir().join(format!("ihdsi-bench-pg-{}", std::process::id()));
    let fail = failed("PostgreSQL", &dir);
    let pg = PgServer::start(&dir)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let vocabulary = cohort.dir.join("concept.parquet");
    load_site(
        &cohort.dir.join(POSTGRES_SITE),
        Some(&vocabulary),
        &pg.url(),
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    let host = SiteHost {
        backend: SiteBackendKind::Postgres,
        url: pg.url(),
    };
    let figures = measure(cohort, runs, k, centralized, repeats, POSTGRES_SITE, host).await?;
    points.push(BackendPoint {
        configuration: "lu inside PostgreSQL",
        figures,
    });
    drop(pg);

    let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cluster = StandaloneCluster::start(slots)
        .await
        .map_err(|e| failed("Ballista cluster", runs)(e.to_string()))?;
    let host = SiteHost {
        backend: SiteBackendKind::Ballista,
        url: cluster.scheduler_url(),
    };
    let figures = measure(cohort, runs, k, centralized, repeats, BALLISTA_SITE, host).await?;
    points.push(BackendPoint {
        configuration: "kr on Ballista",
        figures,
    });
    Ok(points)
}

async fn measure(
    cohort: &Cohort,
    runs: &Path,
    k: u64,
    centralized: &Centralized,
    repeats: Repeats,
    site: &str,
    host: SiteHost,
) -> Result<Vec<sweeps::QueryFigures>> {
    eprintln!(
        "== site backends: {site} (backend = {})",
        host.backend.name()
    );
    let hosts = BTreeMap::from([(site.to_string(), host)]);
    let fed = Federation::start_with(cohort, runs, k, true, &hosts)?;
    let base = Baselines {
        centralized,
        site_settings: None,
        duckdb: None,
    };
    sweeps::workload(&fed, base, WORKLOAD, repeats).await
}
