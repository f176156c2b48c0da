//! The `ihdsi` command line. Its contract (commands, flags, the
//! `grpc://127.0.0.1:PORT` line of the demo, exit codes) is stable: users,
//! scripts and checks drive the engine through it. Each command has its own
//! argument struct, in the module that runs it.

// Printing to the terminal is this module's interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod accounts;
mod demo;
mod generate;
mod load;
mod logging;
mod privacy_flags;
mod query;
mod security;
mod serve;

use crate::error::{CliError, Result};

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
    Generate(generate::GenerateArgs),
    /// Start three sites and a coordinator on 127.0.0.1 and serve until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Run one site's Arrow Flight service.
    Site(serve::ConfigArgs),
    /// Run the coordinator's Flight SQL service.
    Coordinator(serve::ConfigArgs),
    /// Run one SQL statement against a coordinator and print the result.
    Query(query::QueryArgs),
    /// Interactive SQL shell against a coordinator.
    Shell(query::ShellArgs),
    /// Print the argon2 hash of a password read from standard input, for
    /// `[[auth.users]]` in federation.toml.
    HashPassword,
    /// Print a new random service-account token and its digest, for
    /// `[[auth.service_tokens]]` in federation.toml.
    NewToken(accounts::NewTokenArgs),
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
        Command::Query(_)
            | Command::Shell(_)
            | Command::HashPassword
            | Command::NewToken(_)
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
    // Planning and execution walk expression trees recursively. `[limits]`
    // bounds their depth; 8 MiB per worker (tokio's default is 2 MiB) keeps
    // a debug build's deeper frames within the stack at those bounds.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
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
        Command::Generate(args) => args.run().await,
        Command::Demo(args) => args.run().await,
        Command::Site(args) => serve::serve_site(&args.config).await,
        Command::Coordinator(args) => serve::serve_coordinator(&args.config).await,
        Command::Query(args) => args.run().await,
        Command::Shell(args) => args.run().await,
        Command::HashPassword => accounts::hash_password(),
        Command::NewToken(args) => args.run(),
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
    }
}
