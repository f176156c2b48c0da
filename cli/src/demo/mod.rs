//! `ihdsi demo`: a whole federation on one machine.
//!
//! Generates the three-site cohort on first run, starts one site per data
//! subfolder on free loopback ports and the coordinator on the chosen port,
//! prints the Flight SQL URI and a few example queries with their answers,
//! and serves until Ctrl-C.
//!
//! The demo runs the way a real federation should: mutual TLS between the
//! coordinator and the sites, sites that require a signed data permit (the
//! demo's own access body issues one to each demo principal), and
//! hash-chained audit trails ([`security::prepare`]), started through the
//! federation builder ([`crate::federation`]).
//!
//! Its state lives in one run folder, `DATA/run/`, reused from one start
//! to the next as a production federation keeps its own: the audit trails
//! go on from where they stopped and the dp budget ledger keeps every
//! charge, so a restart gives no analyst a fresh budget. `--fresh` starts
//! from an empty folder. Certificates, the access body's key and the
//! permits are made anew at each start.
//!
//! On Ctrl-C or SIGTERM the demo shuts down as the production processes
//! do: no new queries, the ones in flight answer and are fetched (within
//! the grace period), then the coordinator and the sites stop.

// Printing to the terminal is this module's interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod backends;
pub mod postgres;
pub mod security;

use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::client::{ClientOptions, Credentials, run_query_with};
use crate::error::{CliError, Result};

use crate::federation::{FederationSpec, Security, site_folders};
use crate::format::{Format, footer, render};
pub use backends::SiteBackends;
use backends::{DemoSite, SiteHosts};
use ihdsi_catalog::auth::{ServiceToken, UserEntry};
use ihdsi_catalog::{AuthSection, PrivacyMode, PrivacyPolicy, SiteEntry};
use ihdsi_engine::audit::AuditLog;
use ihdsi_engine::site::SiteGuards;
use ihdsi_engine::{Coordinator, SiteError};
use ihdsi_flight_server::auth::secrets;
use ihdsi_flight_server::coordinator::Drain;
use ihdsi_flight_server::permits::PermitStore;
use ihdsi_flight_server::serve::{CoordinatorFront, bind, spawn_coordinator, spawn_site};
use ihdsi_synthetic::{GenerateOptions, generate};

/// Options of `ihdsi demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data: PathBuf,
    pub port: u16,
    pub persons: u64,
    pub federation: PrivacyPolicy,
    pub site: PrivacyPolicy,
    /// Password of the demo analyst [`DEMO_USER`].
    pub password: String,
    /// Lifetime of tokens issued by the handshake.
    pub token_ttl_secs: u64,
    /// Print example queries after start-up.
    pub examples: bool,
    /// TLS on the analyst-facing port.
    pub analyst_tls: bool,
    /// Sites on another backend than DataFusion.
    pub site_backends: SiteBackends,
    /// Start from an empty run folder (no audit trails, no dp charges).
    pub fresh: bool,
    /// Where the demo keeps its state (default `DATA/run`).
    pub run_dir: PathBuf,
}

/// The demo's analyst account.
pub const DEMO_USER: &str = "analyst";
/// The demo analyst's default password (override with `--password`).
pub const DEMO_PASSWORD: &str = "ihdsi-demo";
/// The demo's service account, whose token is printed at start-up.
pub const DEMO_SERVICE: &str = "demo-service";

/// `[auth]` for a demo: one analyst with `password`, and one service
/// account with a fresh random token, returned alongside.
pub fn demo_auth(password: &str) -> Result<(AuthSection, String)> {
    let token = secrets::new_token();
    let auth = AuthSection {
        users: vec![UserEntry {
            name: DEMO_USER.into(),
            password_hash: secrets::hash_password(password)?,
        }],
        service_tokens: vec![ServiceToken {
            name: DEMO_SERVICE.into(),
            token_blake2s: secrets::token_digest(&token),
        }],
        ..AuthSection::default()
    };
    Ok((auth, token))
}

/// Example queries shown at start-up.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Patients per site",
        "SELECT site, count(DISTINCT person_id) AS patients FROM person GROUP BY site ORDER BY site",
    ),
    (
        "Bladder-cancer patients by site and sex",
        "SELECT p.site, c.concept_name AS sex, count(DISTINCT p.person_id) AS patients\nFROM person p\nJOIN condition_occurrence co ON co.person_id = p.person_id\nJOIN concept c ON c.concept_id = p.gender_concept_id\nWHERE co.condition_concept_id = 197508\nGROUP BY p.site, c.concept_name ORDER BY 1, 2",
    ),
    (
        "Driver-gene variants among bladder-cancer patients",
        "SELECT v.target_gene1_symbol AS gene, count(DISTINCT v.person_id) AS patients\nFROM variant_occurrence v\nWHERE v.person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 197508)\nGROUP BY v.target_gene1_symbol ORDER BY patients DESC",
    ),
    (
        "MDS-UPDRS III motor score in Parkinson's disease, by site",
        "SELECT site, count(DISTINCT person_id) AS patients, round(avg(value_as_number), 1) AS mean_score, round(stddev(value_as_number), 1) AS sd\nFROM observation WHERE observation_concept_id = 2000000201\nGROUP BY site ORDER BY site",
    ),
];

/// Make sure the demo data exists.
pub fn ensure_data(data: &Path, persons: u64) -> Result<()> {
    if data.join("concept.parquet").exists() {
        return Ok(());
    }
    eprintln!(
        "generating a {persons}-person three-site cohort in {} ...",
        data.display()
    );
    generate(&GenerateOptions {
        out: data.to_path_buf(),
        persons,
        ..GenerateOptions::default()
    })?;
    Ok(())
}

/// A running demo federation.
#[derive(Debug)]
pub struct Federation {
    pub uri: String,
    pub site_endpoints: Vec<(String, String)>,
    handles: Vec<tokio::task::JoinHandle<ihdsi_flight_server::Result<()>>>,
    stop: tokio::sync::watch::Sender<bool>,
    /// The coordinator's drain: refuses new queries once begun.
    drain: Arc<Drain>,
    /// The private database and cluster of the sites not on DataFusion,
    /// if any; stopped with the federation.
    hosts: SiteHosts,
}

impl Federation {
    /// Stop every server and wait for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
        // The sites are down: now the servers some of them ran on.
        drop(self.hosts);
    }

    /// Stop taking queries, let the ones in flight answer and be fetched
    /// (at most `grace`), then stop every server.
    pub async fn drain_and_shutdown(self, grace: std::time::Duration) {
        self.drain.begin();
        self.drain.idle(grace).await;
        self.shutdown().await;
    }
}

fn stopper(
    rx: &tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Start sites and coordinator over `data` (which must exist), admitting
/// the analysts of `auth`: plaintext, no permits, no audit (in-process
/// tests and development).
pub async fn start(
    data: &Path,
    port: u16,
    federation: PrivacyPolicy,
    site: PrivacyPolicy,
    auth: &AuthSection,
) -> Result<Federation> {
    let mut spec = FederationSpec::new(data, data, auth.clone());
    spec.listen = format!("127.0.0.1:{port}");
    spec.federation_policy = federation;
    spec.site_policy = site;
    start_with(&spec, &SiteBackends::default()).await
}

/// What a site of `spec` checks before and records after every subplan.
fn site_guards(spec: &FederationSpec, id: &str) -> Result<SiteGuards> {
    let opt_out = spec.opt_out.get(id).cloned().unwrap_or_default();
    let Some(sec) = &spec.security else {
        return Ok(SiteGuards {
            opt_out,
            resources: spec.site_resources,
            ..SiteGuards::default()
        });
    };
    let trail =
        AuditLog::open(&sec.site_trail(id), &format!("site:{id}")).map_err(SiteError::from)?;
    Ok(SiteGuards {
        permits: Some(sec.site_permits.clone()),
        audit: Some(Arc::new(trail)),
        opt_out,
        resources: spec.site_resources,
        ..SiteGuards::default()
    })
}

/// Start the federation `spec` describes on this runtime: each site on a
/// free loopback port (on the backend `backends` names for it, started
/// here), then the coordinator on `spec.listen`.
pub async fn start_with(spec: &FederationSpec, backends: &SiteBackends) -> Result<Federation> {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let vocabulary = spec.vocabulary();
    let security = spec.security.as_ref();
    let scheme = if security.is_some() { "https" } else { "http" };
    let folders = spec.sites()?;
    if let Some((unknown, _)) = backends
        .0
        .iter()
        .find(|(id, _)| !folders.iter().any(|f| &f.0 == id))
    {
        return Err(CliError::Client(format!(
            "--site-backend names site '{unknown}', which the demo data does not have"
        )));
    }
    let mut hosts = SiteHosts::default();
    let mut handles = Vec::new();
    let mut entries = Vec::new();
    for (id, folder) in folders {
        let site = DemoSite {
            id: &id,
            folder: &folder,
            data: &spec.data,
            vocabulary: &vocabulary,
            policy: spec.site_policy.clone(),
            guards: site_guards(spec, &id)?,
        };
        let engine = hosts.open(site, backends.of(&id)).await?;
        let (listener, addr) = bind("127.0.0.1:0").await?;
        let tables = engine.tables().to_vec();
        let tls = security.map(|s| s.site_tls(&id));
        handles.push(spawn_site(engine, tls.as_ref(), listener, stopper(&rx))?);
        tracing::info!(site = %id, %addr, tls = tls.is_some(), "site listening");
        entries.push(SiteEntry {
            id,
            country: String::new(),
            endpoint: format!("{scheme}://{addr}"),
            tables,
            patients: None,
        });
    }
    let config = spec.federation_config(entries.clone());
    let coordinator = Coordinator::new(&config).await?;
    let (listener, addr) = bind(&config.coordinator.listen).await?;
    let drain = Arc::new(Drain::default());
    let front = CoordinatorFront {
        permits: match security {
            Some(s) => PermitStore::load(&s.permits_dir)?,
            None => PermitStore::default(),
        },
        tls: config.coordinator.tls.clone(),
        drain: Arc::clone(&drain),
    };
    let scheme = if front.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    handles.push(spawn_coordinator(
        coordinator,
        &config.auth,
        front,
        listener,
        stopper(&rx),
    )?);
    Ok(Federation {
        uri: format!("{scheme}://{addr}"),
        site_endpoints: entries.into_iter().map(|e| (e.id, e.endpoint)).collect(),
        handles,
        stop,
        drain,
        hosts,
    })
}

/// Run the demo until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<()> {
    ensure_data(&opts.data, opts.persons)?;
    let (mut auth, service_token) = demo_auth(&opts.password)?;
    auth.token_ttl_secs = opts.token_ttl_secs;
    let run_dir = run_folder(&opts.data, &opts.run_dir, opts.fresh)?;
    let sites: Vec<String> = site_folders(&opts.data)?.into_iter().map(|s| s.0).collect();
    let principals = [DEMO_USER.to_string(), DEMO_SERVICE.to_string()];
    let mut security = security::prepare(&run_dir, &sites, &principals)?;
    security.analyst_tls = opts.analyst_tls;
    let mut spec = FederationSpec::new(&opts.data, &run_dir, auth);
    spec.listen = format!("127.0.0.1:{}", opts.port);
    spec.site_policy = opts.site.clone();
    spec.federation_policy = opts.federation.clone();
    if spec.federation_policy.mode == PrivacyMode::Dp {
        spec.federation_policy.dp.ledger = Some(security.audit_dir.join("budget.jsonl"));
    }
    spec.security = Some(security);
    let fed = start_with(&spec, &opts.site_backends).await?;
    let client = ClientOptions {
        tls_ca: spec
            .security
            .as_ref()
            .filter(|s| s.analyst_tls)
            .map(Security::ca),
        permit: None,
    };
    print_banner(&opts, &spec, &fed, &service_token);
    if opts.examples {
        print_examples(&opts, &fed.uri, &client).await?;
    }
    let ca_flag = client
        .tls_ca
        .as_ref()
        .map(|ca| format!(" --tls-ca {}", ca.display()))
        .unwrap_or_default();
    println!(
        "\nTry: ihdsi shell --uri {} --user {DEMO_USER} --password {}{ca_flag}\n  or: ihdsi query --uri {} --user {DEMO_USER} --password {}{ca_flag} \"SELECT year_of_birth / 10 * 10 AS decade, count(*) FROM person GROUP BY 1 ORDER BY 1\"",
        fed.uri, opts.password, fed.uri, opts.password
    );
    println!("Serving until Ctrl-C.");
    let signal = crate::signals::termination().await;
    let grace = std::time::Duration::from_secs(ihdsi_catalog::registry::default_shutdown_grace());
    eprintln!(
        "stopping ({signal}): no new queries; the ones in flight may finish within {} s",
        grace.as_secs()
    );
    fed.drain_and_shutdown(grace).await;
    Ok(())
}

/// The demo's run folder `dir` (`DATA/run/` by default): reused as it is,
/// or emptied first with `fresh`. Run folders of older demos
/// (`DATA/runs/<time>-<pid>/`, one per start) are removed, so that nothing
/// piles up.
fn run_folder(data: &Path, dir: &Path, fresh: bool) -> Result<PathBuf> {
    let remove = |dir: &Path| {
        std::fs::remove_dir_all(dir)
            .map_err(|e| CliError::Client(format!("cannot remove {}: {e}", dir.display())))
    };
    let legacy = data.join("runs");
    if legacy.is_dir() {
        eprintln!(
            "removing the per-start run folders of older demos in {}",
            legacy.display()
        );
        remove(&legacy)?;
    }
    let dir = dir.to_path_buf();
    if fresh && dir.exists() {
        eprintln!(
            "--fresh: removing {} (audit trails, dp budget ledger)",
            dir.display()
        );
        remove(&dir)?;
    } else if dir.exists() {
        eprintln!(
            "reusing {}: audit trails and the dp budget go on from the last run (--fresh starts clean)",
            dir.display()
        );
    }
    Ok(dir)
}

/// What is up, where, and how to log in.
fn print_banner(opts: &DemoOptions, spec: &FederationSpec, fed: &Federation, token: &str) {
    println!(
        "ihdsi demo federation is up: {} sites",
        fed.site_endpoints.len()
    );
    for (id, ep) in &fed.site_endpoints {
        let backend = opts.site_backends.describe(id);
        println!("  site {id:<4} {ep}  subplans run {backend}");
    }
    if let Some(security) = &spec.security {
        println!(
            "  mutual TLS between coordinator and sites; sites require a data permit; audit trails in {}",
            security.audit_dir.display()
        );
    }
    println!(
        "  certificates, access-body key and permits: {}",
        spec.dir.display()
    );
    println!("Flight SQL endpoint: {}", fed.uri);
    println!("  user: {DEMO_USER}  password: {}", opts.password);
    println!(
        "  data permit: {} (the analyst's only one, used without asking; select it with --permit or the x-ihdsi-permit header)",
        security::permit_id(DEMO_USER)
    );
    println!("  service token ({DEMO_SERVICE}): {token}");
    println!(
        "  privacy: {} mode; minimum group size: federation {}, sites {}",
        opts.federation.mode.as_str(),
        opts.federation.min_group_size,
        opts.site.min_group_size
    );
    if opts.federation.mode == PrivacyMode::Dp {
        println!(
            "  dp: ρ = {} per release, budget ρ = {} per data permit (EXPLAIN shows a query's cost without charging it)",
            opts.federation.dp.rho_per_release, opts.federation.dp.budget_rho
        );
    }
}

/// Run the example queries as the demo analyst and print their answers.
async fn print_examples(opts: &DemoOptions, uri: &str, client: &ClientOptions) -> Result<()> {
    let login = Credentials::Password {
        user: DEMO_USER.into(),
        password: opts.password.clone(),
    };
    for (title, sql) in EXAMPLES {
        println!("\n-- {title}\n{sql};");
        match run_query_with(uri, &login, client, sql).await {
            Ok(r) => println!("{}\n{}", render(&r, Format::Table)?, footer(&r)),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(())
}
