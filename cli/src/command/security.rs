//! `ihdsi certs`, `ihdsi permit` and `ihdsi audit`: the commands a
//! federation operator, an access body and a data steward use.

use std::path::PathBuf;

use chrono::{Duration, SecondsFormat, Utc};
use clap::Subcommand;

use crate::error::{CliError, Result};
use ihdsi_catalog::permit::{Permit, Purpose, issue, public_key_of};
use ihdsi_engine::audit::verify_file;
use ihdsi_flight_server::permits::{read_signing_key, write_signing_key};
use ihdsi_flight_server::tls;

/// `ihdsi certs …`
#[derive(Debug, Subcommand)]
pub(super) enum Certs {
    /// Create a development CA and certificates for a coordinator and its
    /// sites (ca.pem, coordinator.pem, site-<id>.pem, with their keys).
    Init {
        /// Folder for the CA and one certificate and key per site and for
        /// the coordinator (`ca.pem`, `site-<id>.pem`, `coordinator.pem`, …).
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated site ids.
        #[arg(long, default_value = "lu,us,kr", value_delimiter = ',')]
        sites: Vec<String>,
        /// Extra host names or IP addresses for every certificate
        /// (localhost and 127.0.0.1 are always included).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
    /// Print the sha256 fingerprint of a PEM certificate, for a site's
    /// `[tls] trusted_clients`.
    Fingerprint { cert: PathBuf },
}

/// `ihdsi permit …`
#[derive(Debug, Subcommand)]
pub(super) enum PermitCommand {
    /// Create an access body's ed25519 signing key and print the
    /// `[[permits.trusted_keys]]` entry sites need.
    Keygen {
        /// Where to write the signing key (keep it secret).
        #[arg(long)]
        out: PathBuf,
        /// The key's name, as permits and sites refer to it.
        #[arg(long)]
        name: String,
    },
    /// Sign a data permit and print (or write) its token.
    Issue(Box<IssueArgs>),
}

/// Arguments of `ihdsi permit issue`.
#[derive(Debug, clap::Args)]
pub(super) struct IssueArgs {
    /// The access body's signing key (from `ihdsi permit keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The signing key's name.
    #[arg(long)]
    issuer: String,
    /// The permit's reference.
    #[arg(long)]
    id: String,
    /// The analyst's login name.
    #[arg(long)]
    holder: String,
    /// One of public_health, policy_making, official_statistics,
    /// education, scientific_research, care_improvement (EHDS Art. 53).
    #[arg(long)]
    purpose: String,
    /// Comma-separated patient tables in scope, or `all`.
    #[arg(long, value_delimiter = ',', required = true)]
    tables: Vec<String>,
    /// Comma-separated site ids in scope.
    #[arg(long, value_delimiter = ',', required = true)]
    sites: Vec<String>,
    /// The holder uses the data commercially.
    #[arg(long)]
    commercial: bool,
    /// Privacy mode granted: threshold or dp.
    #[arg(long, default_value = "threshold", value_parser = ["threshold", "dp"])]
    privacy_mode: String,
    /// zCDP budget ρ granted (differential-privacy mode).
    #[arg(long)]
    budget_rho: Option<f64>,
    /// Start of validity (RFC 3339); now when absent.
    #[arg(long)]
    valid_from: Option<String>,
    /// Days of validity from the start.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Write the token to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `ihdsi audit …`
#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Check a hash-chained audit trail; name the first bad line.
    Verify { file: PathBuf },
}

/// Run `ihdsi certs …`.
pub(super) fn certs(command: Certs) -> Result<()> {
    match command {
        Certs::Init { out, sites, hosts } => {
            let set = tls::init(&out, &sites, &hosts)?;
            println!(
                "wrote a development CA and certificates to {}",
                set.dir.display()
            );
            println!(
                "coordinator certificate fingerprint (for each site's [tls] trusted_clients):"
            );
            println!("{}", set.coordinator_fingerprint);
        }
        Certs::Fingerprint { cert } => println!("{}", tls::fingerprint_pem_file(&cert)?),
    }
    Ok(())
}

/// Run `ihdsi permit …`.
pub(super) fn permit(command: PermitCommand) -> Result<()> {
    match command {
        PermitCommand::Keygen { out, name } => {
            ihdsi_catalog::auth::validate_principal(&name)?;
            let public = write_signing_key(&out)?;
            println!(
                "# signing key written to {} (keep it secret)",
                out.display()
            );
            println!("[[permits.trusted_keys]]");
            println!("name = \"{name}\"");
            println!("public_key = \"{public}\"");
        }
        PermitCommand::Issue(args) => {
            let out = args.out.clone();
            let token = issue_permit(*args)?;
            match out {
                Some(path) => std::fs::write(&path, format!("{token}\n")).map_err(|e| {
                    CliError::Permit(format!("cannot write {}: {e}", path.display()))
                })?,
                None => println!("{token}"),
            }
        }
    }
    Ok(())
}

/// Sign the permit `args` describe.
pub(super) fn issue_permit(args: IssueArgs) -> Result<String> {
    let key = read_signing_key(&args.key)?;
    public_key_of(&key)?;
    let purpose: Purpose = args.purpose.parse()?;
    let from = match &args.valid_from {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| CliError::Permit(format!("--valid-from '{t}': {e}")))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let until = from + Duration::days(args.days);
    let tables = if args.tables.iter().any(|t| t == "all") {
        ihdsi_catalog::schema::patient_tables()
            .map(|t| t.name.to_string())
            .collect()
    } else {
        args.tables
    };
    let permit = Permit {
        id: args.id,
        holder: args.holder,
        purpose,
        commercial: args.commercial,
        tables,
        sites: args.sites,
        privacy_mode: args.privacy_mode,
        budget_rho: args.budget_rho,
        valid_from: from.to_rfc3339_opts(SecondsFormat::Secs, true),
        valid_until: until.to_rfc3339_opts(SecondsFormat::Secs, true),
        issuer: args.issuer,
    };
    Ok(issue(&permit, &key)?)
}

/// Verify an audit trail: `Ok(true)` when it is intact.
pub(super) fn audit(command: AuditCommand) -> Result<bool> {
    let AuditCommand::Verify { file } = command;
    let report = verify_file(&file).map_err(|e| CliError::Client(format!("cannot verify: {e}")))?;
    match report.first_bad {
        None => {
            println!(
                "{}: {} records, chain intact",
                file.display(),
                report.records
            );
            Ok(true)
        }
        Some(bad) => {
            println!(
                "{}: line {}: {} ({} records verified before it)",
                file.display(),
                bad.line,
                bad.reason,
                report.records
            );
            Ok(false)
        }
    }
}
