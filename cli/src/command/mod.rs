//! The `ihdsi` command line. Its contract (commands, flags, the
//! `grpc://127.0.0.1:PORT` line of the demo, exit codes) is stable: users,
//! scripts and checks drive the engine through it.

// Printing to the terminal is this module's interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod load;
mod logging;
mod security;

use crate::client::{ClientOptions, Connection, Credentials, run_query_with};
use crate::demo::{DEMO_PASSWORD, DEMO_USER, DemoOptions, run as run_demo};
use crate::error::{CliError, Result};
use crate::format::{Format, footer, render};
use crate::shell;
use ihdsi_catalog::registry::SiteBackendKind;
use ihdsi_catalog::{DpSettings, FederationConfig, PrivacyMode, PrivacyPolicy, SiteConfig};
use ihdsi_engine::{Coordinator, SiteEngine};
use ihdsi_flight_server::auth::secrets;
use ihdsi_flight_server::permits::PermitStore;
use ihdsi_flight_server::serve::{CoordinatorFront, bind, spawn_coordinator, spawn_site};
use ihdsi_synthetic::{GenerateOptions, generate};

/// Federated SQL over a cross-border OMOP cohort: only thresholded
/// aggregates ever leave a site.
#[derive(Debug, Parser)]
#[command(
    name = "ihdsi",
    version,
    about = "Federated SQL over a cross-border OMOP cohort: only thresholded aggregates ever leave a site."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic synthetic multi-site OMOP cohort as Parquet.
    Generate {
        /// Output folder: DIR/<site>/<table>.parquet and DIR/concept.parquet.
        #[arg(long)]
        out: PathBuf,
        /// Total persons across all sites.
        #[arg(long, default_value_t = 30_000)]
        persons: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Comma-separated site ids.
        #[arg(long, default_value = "lu,us,kr", value_delimiter = ',')]
        sites: Vec<String>,
    },
    /// Start three sites and a coordinator on 127.0.0.1 and serve until Ctrl-C.
    Demo {
        #[arg(long, default_value = "ihdsi-demo-data")]
        data: PathBuf,
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Persons to generate when DATA is empty.
        #[arg(long, default_value_t = 30_000)]
        persons: u64,
        /// The federation's minimum distinct patients per released group.
        #[arg(long, default_value_t = 10)]
        min_group_size: u64,
        /// Each site's minimum distinct patients per group it sends.
        #[arg(long, default_value_t = 10)]
        site_min_group_size: u64,
        /// Allow MIN and MAX (they release one patient's value).
        #[arg(long)]
        allow_min_max: bool,
        /// Round released counts to the nearest multiple of N (1 = exact).
        #[arg(long, default_value_t = 1)]
        round_counts_to: u64,
        /// threshold: tell analysts how many groups were withheld (the
        /// count discloses that small groups exist; off by default).
        #[arg(long)]
        report_suppressed: bool,
        /// Run a site on another backend: `lu=postgres` (a private
        /// PostgreSQL server is started and the site loaded into it) or
        /// `kr=ballista` (an in-process Ballista scheduler and executor
        /// run its subplans over its Parquet files). Repeatable; sites not
        /// named run on `datafusion`.
        #[arg(long, value_parser = parse_site_backend)]
        site_backend: Vec<(String, SiteBackendKind)>,
        /// Disclosure control: `threshold` (exact counts of groups of at
        /// least --min-group-size patients) or `dp` (noisy counts and sums,
        /// a zCDP budget per data permit).
        #[arg(long, default_value = "threshold")]
        privacy: PrivacyMode,
        /// dp: the budget ρ of each data permit.
        #[arg(long, default_value_t = 1.0)]
        budget: f64,
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
    },
    /// Run one site's Arrow Flight service.
    Site {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the coordinator's Flight SQL service.
    Coordinator {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one SQL statement against a coordinator and print the result.
    Query {
        #[command(flatten)]
        login: Login,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// The SQL statement.
        sql: String,
    },
    /// Interactive SQL shell against a coordinator.
    Shell {
        #[command(flatten)]
        login: Login,
    },
    /// Print the argon2 hash of a password read from standard input, for
    /// `[[auth.users]]` in federation.toml.
    HashPassword,
    /// Print a new random service-account token and its digest, for
    /// `[[auth.service_tokens]]` in federation.toml.
    NewToken {
        /// The service account's name.
        #[arg(long)]
        name: String,
    },
    /// Development certificates for mutual TLS.
    #[command(subcommand)]
    Certs(security::Certs),
    /// Data permits: access-body keys and signed permits.
    #[command(subcommand)]
    Permit(security::PermitCommand),
    /// The hash-chained audit trail.
    #[command(subcommand)]
    Audit(security::AuditCommand),
    /// Load a site's data into the database a site backend reads.
    #[command(subcommand)]
    Load(load::Load),
}

/// Where the coordinator is and how to log in to it.
#[derive(Debug, Args)]
struct Login {
    /// grpc://HOST:PORT of the coordinator.
    #[arg(long, env = "IHDSI_URI", default_value = "grpc://127.0.0.1:50051")]
    uri: String,
    /// User name for the handshake.
    #[arg(long, env = "IHDSI_USER", default_value = DEMO_USER)]
    user: String,
    /// Password for the handshake.
    #[arg(long, env = "IHDSI_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A bearer token instead of a password (service accounts).
    #[arg(
        long,
        env = "IHDSI_TOKEN",
        hide_env_values = true,
        conflicts_with = "password"
    )]
    token: Option<String>,
    /// Data permit to query under: an id the coordinator holds, or a whole
    /// permit token (sent as the x-ihdsi-permit header).
    #[arg(long, env = "IHDSI_PERMIT", hide_env_values = true)]
    permit: Option<String>,
    /// CA certificate (PEM) of a grpc+tls:// coordinator.
    #[arg(long, env = "IHDSI_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

impl Login {
    fn options(&self) -> ClientOptions {
        ClientOptions {
            tls_ca: self.tls_ca.clone(),
            permit: self.permit.clone(),
        }
    }

    fn credentials(&self) -> Result<Credentials> {
        match (&self.token, &self.password) {
            (Some(token), _) => Ok(Credentials::Token(token.clone())),
            (None, Some(password)) => Ok(Credentials::Password {
                user: self.user.clone(),
                password: password.clone(),
            }),
            (None, None) => Err(CliError::Client(
                "no credentials: pass --password (or set IHDSI_PASSWORD), or --token (IHDSI_TOKEN)"
                    .into(),
            )),
        }
    }
}

/// Entry point: parse arguments, run, map errors to exit code 1.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with the arguments given (the first is the program name), for
/// binaries that embed the `ihdsi` command, such as `ihdsi-bench`, which
/// starts its site and coordinator processes as `ihdsi-bench ihdsi site …`.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let quiet = matches!(
        cli.command,
        Command::Query { .. }
            | Command::Shell { .. }
            | Command::HashPassword
            | Command::NewToken { .. }
            | Command::Certs(_)
            | Command::Permit(_)
            | Command::Audit(_)
    );
    // tonic reports refused TLS handshakes (untrusted certificate, plaintext
    // on a TLS port) at debug level: a security event
    // a site's steward must see.
    logging::init(if quiet {
        "warn"
    } else {
        "info,tonic::transport::server=debug"
    });
    run_to_exit_code(dispatch(cli.command))
}

/// Run `work` on a multi-threaded runtime; on failure print `error: …` on
/// stderr and exit 1 (the contract of every command, here and in
/// `ihdsi-bench`).
pub fn run_to_exit_code<E: std::fmt::Display>(
    work: impl std::future::Future<Output = std::result::Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Generate {
            out,
            persons,
            seed,
            sites,
        } => {
            let started = std::time::Instant::now();
            let summary = tokio::task::spawn_blocking(move || {
                generate(&GenerateOptions {
                    out,
                    persons,
                    seed,
                    sites,
                })
            })
            .await
            .map_err(|e| CliError::Serve(e.to_string()))??;
            for (site, n, rows) in &summary.sites {
                println!("site {site}: {n} persons, {rows} rows");
            }
            println!("done in {:.1} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Demo {
            data,
            port,
            persons,
            min_group_size,
            site_min_group_size,
            allow_min_max,
            round_counts_to,
            report_suppressed,
            site_backend,
            privacy,
            budget,
            password,
            token_ttl_secs,
            no_examples,
            analyst_tls,
        } => {
            let federation = PrivacyPolicy {
                mode: privacy,
                round_counts_to,
                report_suppressed,
                dp: DpSettings {
                    budget_rho: budget,
                    ..DpSettings::default()
                },
                ..PrivacyPolicy::threshold(min_group_size, allow_min_max)
            };
            let site = PrivacyPolicy {
                mode: privacy,
                ..PrivacyPolicy::threshold(site_min_group_size, allow_min_max)
            };
            if !(budget.is_finite() && budget > 0.0) {
                return Err(CliError::Client("--budget must be a positive ρ".into()));
            }
            if min_group_size == 0 || site_min_group_size == 0 || round_counts_to == 0 {
                return Err(CliError::Client(
                    "minimum group sizes and the rounding base must be at least 1".into(),
                ));
            }
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
                site_backends: crate::demo::SiteBackends(site_backend),
            })
            .await
        }
        Command::Site { config } => serve_site(&config).await,
        Command::Coordinator { config } => serve_coordinator(&config).await,
        Command::Certs(c) => security::certs(c),
        Command::Load(l) => load::load(l).await,
        Command::Permit(p) => security::permit(p),
        Command::Audit(a) => {
            if security::audit(a)? {
                Ok(())
            } else {
                Err(CliError::Client("the audit trail does not verify".into()))
            }
        }
        Command::Query { login, format, sql } => {
            let result =
                run_query_with(&login.uri, &login.credentials()?, &login.options(), &sql).await?;
            println!("{}", render(&result, format)?);
            if format == Format::Table {
                println!("{}", footer(&result));
            } else {
                eprintln!("{}", footer(&result));
            }
            Ok(())
        }
        Command::Shell { login } => {
            let credentials = login.credentials()?;
            let options = login.options();
            let connection = Connection::connect_with(&login.uri, &credentials, &options).await?;
            let login = shell::Login {
                uri: &login.uri,
                credentials: &credentials,
                options: &options,
            };
            shell::run(connection, login).await
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| CliError::Client(format!("cannot read the password: {e}")))?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(CliError::Client(
                    "empty password: type it on standard input".into(),
                ));
            }
            println!("{}", secrets::hash_password(password)?);
            Ok(())
        }
        Command::NewToken { name } => {
            ihdsi_catalog::auth::validate_principal(&name)?;
            let token = secrets::new_token();
            println!("# give this token to the service account, and keep it secret:");
            println!("# {token}");
            println!("[[auth.service_tokens]]");
            println!("name = \"{name}\"");
            println!("token_blake2s = \"{}\"", secrets::token_digest(&token));
            Ok(())
        }
    }
}

/// `ihdsi site --config site.toml`: serve until Ctrl-C. Prints its endpoint
/// on standard output once it is listening.
async fn serve_site(config: &std::path::Path) -> Result<()> {
    let config = SiteConfig::load(config)?;
    if config.tls.is_none() {
        tracing::warn!(site = %config.site.id, "no [tls]: this site accepts plaintext subplans from anyone who can reach its port (development only)");
    }
    if config.permits.is_none() {
        tracing::warn!(site = %config.site.id, "no [permits]: this site runs subplans without a data permit (development only)");
    }
    let engine = SiteEngine::open(&config).await?;
    let (listener, addr) = bind(&config.site.listen).await?;
    let tables = engine.tables().to_vec();
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let server = spawn_site(engine, config.tls.as_ref(), listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })?;
    tracing::info!(site = %config.site.id, %addr, ?tables, min_group_size = config.privacy.min_group_size, tls = config.tls.is_some(), permits = config.permits.is_some(), audit = config.audit.is_some(), "site listening");
    println!("site {} endpoint: {scheme}://{addr}", config.site.id);
    Ok(server.await.map_err(|e| CliError::Serve(e.to_string()))??)
}

/// `ihdsi coordinator --config federation.toml`: serve until Ctrl-C.
async fn serve_coordinator(config: &std::path::Path) -> Result<()> {
    let config = FederationConfig::load(config)?;
    let coordinator = Coordinator::new(&config).await?;
    let permits = match &config.permits {
        Some(p) => PermitStore::load(&p.dir)?,
        None => PermitStore::default(),
    };
    let (listener, addr) = bind(&config.coordinator.listen).await?;
    let front = CoordinatorFront {
        permits,
        tls: config.coordinator.tls.clone(),
    };
    let scheme = if front.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let server = spawn_coordinator(coordinator, &config.auth, front, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })?;
    tracing::info!(%addr, sites = config.sites.len(), site_tls = config.tls.is_some(), audit = config.audit.is_some(), "coordinator listening");
    println!("Flight SQL endpoint: {scheme}://{addr}");
    Ok(server.await.map_err(|e| CliError::Serve(e.to_string()))??)
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
