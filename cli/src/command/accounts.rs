//! `ihdsi hash-password` and `ihdsi new-token`: the lines of `[auth]` in
//! `federation.toml`, made without the secret ever reaching a file.

use clap::Args;

use crate::error::{CliError, Result};
use ihdsi_flight_server::auth::secrets;

/// Print the argon2 hash of a password read from standard input.
#[expect(clippy::print_stdout, reason = "the command's output")]
pub(super) fn hash_password() -> Result<()> {
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

/// Print a new random service-account token and its digest.
#[derive(Debug, Args)]
pub(super) struct NewTokenArgs {
    /// The service account's name.
    #[arg(long)]
    name: String,
}

impl NewTokenArgs {
    /// Make the token and print its `[[auth.service_tokens]]` entry.
    #[expect(clippy::print_stdout, reason = "the command's output")]
    pub(super) fn run(self) -> Result<()> {
        let name = self.name;
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
