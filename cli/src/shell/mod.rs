//! `ihdsi shell`: an interactive SQL shell against a coordinator.
//!
//! For the clinical researcher at a terminal: line editing and history
//! (rustyline; history in `~/.ihdsi_history`), statements that span lines
//! until a `;`, `\d` to list the cohort schema's tables and `\d TABLE` for
//! columns with their OMOP comments. While sites work, one line per site
//! shows its state and elapsed time (on a terminal only: piped output stays
//! clean for scripts). Results print as tables with the count of groups the
//! threshold suppressed.

// Printing to the terminal is this module's interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod describe;
mod progress;

use std::io::IsTerminal;
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::client::{ClientOptions, Connection, Credentials};
use crate::error::{CliError, Result};
use crate::format::{Format, footer, render};

const PROMPT: &str = "ihdsi> ";
const CONTINUATION: &str = "   ..> ";

const HELP: &str = "\
Statements end with ';' and may span lines.
  \\d            list the tables of the cohort schema
  \\d TABLE      describe TABLE's columns
  \\?            this help
  \\q            quit (or Ctrl-D)
Ctrl-C abandons the statement being typed, or cancels the one running.";

/// What the user asked for with one line or statement.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    /// Keep reading: the statement has no ';' yet.
    More,
    Sql(String),
    Tables,
    Describe(String),
    Help,
    Quit,
    Unknown(String),
}

/// Append `line` to `buffer` and decide what to do.
fn interpret(buffer: &mut String, line: &str) -> Input {
    let trimmed = line.trim();
    if buffer.is_empty() && trimmed.starts_with('\\') {
        let mut words = trimmed.split_whitespace();
        let command = words.next().unwrap_or_default();
        let argument = words.next().map(|w| w.trim_end_matches(';').to_string());
        return match (command, argument) {
            ("\\q", _) => Input::Quit,
            ("\\?" | "\\h", _) => Input::Help,
            ("\\d", None) => Input::Tables,
            ("\\d", Some(table)) => Input::Describe(table),
            (other, _) => Input::Unknown(other.to_string()),
        };
    }
    if trimmed.is_empty() && buffer.is_empty() {
        return Input::More;
    }
    if !buffer.is_empty() {
        buffer.push('\n');
    }
    buffer.push_str(line);
    if buffer.trim_end().ends_with(';') {
        let sql = std::mem::take(buffer);
        let sql = sql.trim().trim_end_matches(';').trim().to_string();
        if sql.is_empty() {
            return Input::More;
        }
        return Input::Sql(sql);
    }
    Input::More
}

fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("IHDSI_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ihdsi_history"))
}

/// Log in again when the session token has expired (it lives
/// `auth.token_ttl_secs`, 8 hours by default) and the shell has a password.
async fn renew(connection: &mut Connection, login: &Login<'_>, err: &CliError) -> bool {
    let Login {
        uri,
        credentials,
        options,
    } = *login;
    let expired = err.to_string().contains("bearer token expired");
    if !expired || !matches!(credentials, Credentials::Password { .. }) {
        return false;
    }
    match Connection::connect_with(uri, credentials, options).await {
        Ok(fresh) => {
            *connection = fresh;
            true
        }
        Err(_) => false,
    }
}

/// How the shell connected, so it can log in again.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    pub uri: &'a str,
    pub credentials: &'a Credentials,
    pub options: &'a ClientOptions,
}

/// Run the shell until `\q`, Ctrl-D or end of input.
pub async fn run(mut connection: Connection, login: Login<'_>) -> Result<()> {
    let uri = login.uri;
    let mut editor = DefaultEditor::new()
        .map_err(|e| CliError::Client(format!("cannot start the line editor: {e}")))?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let live = std::io::stderr().is_terminal();
    if std::io::stdin().is_terminal() {
        println!("Connected to {uri}. Type \\? for help, \\q to quit.");
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::Client(format!("cannot read input: {e}"))),
        };
        let input = interpret(&mut buffer, &line);
        if !matches!(input, Input::More) {
            let entry = match &input {
                Input::Sql(sql) => format!("{sql};"),
                _ => line.trim().to_string(),
            };
            let _ = editor.add_history_entry(entry);
        }
        match input {
            Input::More => {}
            Input::Quit => break,
            Input::Help => println!("{HELP}"),
            Input::Unknown(c) => eprintln!("unknown command {c}; \\? lists the commands"),
            Input::Tables => report(describe::tables(&connection).await),
            Input::Describe(t) => report(describe::columns(&connection, &t).await),
            Input::Sql(sql) => {
                let mut outcome = execute(&connection, &sql, live).await;
                if let Err(e) = &outcome
                    && renew(&mut connection, &login, e).await
                {
                    outcome = execute(&connection, &sql, live).await;
                }
                report(outcome)
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

fn report(outcome: Result<String>) {
    match outcome {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: {e}"),
    }
}

/// Run one statement, with live per-site progress on a terminal.
async fn execute(connection: &Connection, sql: &str, live: bool) -> Result<String> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let display = live.then(|| progress::Display::start(connection.clone(), request_id.clone()));
    // Ctrl-C while a statement runs drops its call: the coordinator drops
    // the query, and with it every site request (they read `cancelled`).
    let result = tokio::select! {
        result = connection.query_tagged(sql, Some(&request_id)) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    if let Some(d) = display {
        d.finish().await;
    }
    let Some(result) = result else {
        return Ok("cancelled: the statement was dropped, and its site requests with it".into());
    };
    let result = result?;
    Ok(format!(
        "{}\n{}",
        render(&result, Format::Table)?,
        footer(&result)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_span_lines_until_a_semicolon() {
        let mut buffer = String::new();
        assert_eq!(interpret(&mut buffer, "SELECT site,"), Input::More);
        assert_eq!(
            interpret(&mut buffer, "  count(*) FROM person"),
            Input::More
        );
        assert_eq!(
            interpret(&mut buffer, "GROUP BY site;"),
            Input::Sql("SELECT site,\n  count(*) FROM person\nGROUP BY site".into())
        );
        assert!(buffer.is_empty());
        assert_eq!(interpret(&mut buffer, ";"), Input::More);
    }

    #[test]
    fn backslash_commands_are_recognised_only_at_statement_start() {
        let mut buffer = String::new();
        assert_eq!(interpret(&mut buffer, "\\d"), Input::Tables);
        assert_eq!(
            interpret(&mut buffer, "\\d person"),
            Input::Describe("person".into())
        );
        assert_eq!(interpret(&mut buffer, "\\q"), Input::Quit);
        assert_eq!(interpret(&mut buffer, "\\x"), Input::Unknown("\\x".into()));
        assert_eq!(interpret(&mut buffer, "SELECT"), Input::More);
        assert_eq!(interpret(&mut buffer, "\\d"), Input::More);
    }
}
