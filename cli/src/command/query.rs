//! `ihdsi query` and `ihdsi shell`: how an analyst logs in, and what runs.

use std::path::PathBuf;

use clap::Args;

use crate::client::{ClientOptions, Connection, Credentials, run_query_with};
use crate::demo::DEMO_USER;
use crate::error::{CliError, Result};
use crate::format::{Format, footer, render};
use crate::shell;

/// Where the coordinator is and how to log in to it.
#[derive(Debug, Args)]
pub(super) struct Login {
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

/// Run one SQL statement against a coordinator and print the result.
#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    #[command(flatten)]
    login: Login,
    /// How to print the result: an aligned table, CSV with a header, or
    /// a JSON array with one object per row.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The SQL statement.
    sql: String,
}

impl QueryArgs {
    /// Run the statement and print its table (or CSV/JSON) and footer.
    #[expect(
        clippy::print_stdout,
        clippy::print_stderr,
        reason = "the command's output"
    )]
    pub(super) async fn run(self) -> Result<()> {
        let QueryArgs { login, format, sql } = self;
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
}

/// Interactive SQL shell against a coordinator.
#[derive(Debug, Args)]
pub(super) struct ShellArgs {
    #[command(flatten)]
    login: Login,
}

impl ShellArgs {
    /// Log in and hand the connection to the shell.
    pub(super) async fn run(self) -> Result<()> {
        let login = self.login;
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
}
