//! `ihdsi demo`: its flags, and the policies they make.

use std::path::PathBuf;

use clap::Args;

use super::privacy_flags::PrivacyFlags;
use crate::demo::{DEMO_PASSWORD, DemoOptions, SiteBackends, run as run_demo};
use crate::error::Result;
use ihdsi_catalog::registry::SiteBackendKind;

/// Start three sites and a coordinator on 127.0.0.1 and serve until Ctrl-C.
#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Folder of the demo cohort (generated on first run) and of its run
    /// state (DATA/run/: certificates, permits, audit trails, dp ledger).
    #[arg(long, default_value = "ihdsi-demo-data")]
    data: PathBuf,
    /// Port of the coordinator's Flight SQL endpoint on 127.0.0.1.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Persons to generate when DATA is empty.
    #[arg(long, default_value_t = 30_000)]
    persons: u64,
    #[command(flatten)]
    privacy: PrivacyFlags,
    /// Run a site on another backend: `lu=postgres` (a private
    /// PostgreSQL server is started and the site loaded into it) or
    /// `kr=ballista` (an in-process Ballista scheduler and executor
    /// run its subplans over its Parquet files). Repeatable; sites not
    /// named run on `datafusion`.
    #[arg(long, value_parser = parse_site_backend)]
    site_backend: Vec<(String, SiteBackendKind)>,
    /// Password of the demo analyst 'analyst'.
    #[arg(long, env = "IHDSI_DEMO_PASSWORD", default_value = DEMO_PASSWORD)]
    password: String,
    /// Lifetime in seconds of the tokens the handshake issues.
    #[arg(long, default_value_t = 8 * 3600)]
    token_ttl_secs: u64,
    /// Do not run the example queries at start-up.
    #[arg(long)]
    no_examples: bool,
    /// Serve analysts over TLS too (grpc+tls://; clients trust the
    /// demo's certs/ca.pem, whose path is printed).
    #[arg(long)]
    analyst_tls: bool,
    /// Start from an empty run folder: the audit trails and the dp budget
    /// ledger of earlier runs (kept otherwise) are removed.
    #[arg(long)]
    fresh: bool,
    /// The run folder, where the demo keeps its state from one start to
    /// the next (default DATA/run); two demos at once need two.
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

impl DemoArgs {
    /// Check the flags, make the policies and run the demo until Ctrl-C.
    pub(super) async fn run(self) -> Result<()> {
        let DemoArgs {
            data,
            port,
            persons,
            privacy,
            site_backend,
            password,
            token_ttl_secs,
            no_examples,
            analyst_tls,
            fresh,
            run_dir,
        } = self;
        let (federation, site) = privacy.policies()?;
        let run_dir = run_dir.unwrap_or_else(|| data.join("run"));
        run_demo(DemoOptions {
            data,
            port,
            persons,
            federation,
            site,
            password,
            token_ttl_secs: token_ttl_secs.max(1),
            examples: !no_examples,
            analyst_tls,
            site_backends: SiteBackends(site_backend),
            fresh,
            run_dir,
        })
        .await
    }
}

/// `SITE=BACKEND` of `--site-backend`.
fn parse_site_backend(s: &str) -> std::result::Result<(String, SiteBackendKind), String> {
    let (site, backend) = s
        .split_once('=')
        .ok_or_else(|| format!("expected SITE=BACKEND, e.g. lu=postgres; got '{s}'"))?;
    let kind = match backend {
        "datafusion" => SiteBackendKind::Datafusion,
        "postgres" => SiteBackendKind::Postgres,
        "ballista" => SiteBackendKind::Ballista,
        other => {
            return Err(format!(
                "unknown backend '{other}': datafusion, postgres or ballista"
            ));
        }
    };
    Ok((site.to_string(), kind))
}
