//! The command's logs: structured `tracing` events on stderr, filtered by
//! `RUST_LOG`, with the crates that would log patient-level detail capped.

use std::io::IsTerminal;

/// Crates whose logs are capped at `warn` whatever `RUST_LOG` says:
/// Ballista's scheduler logs every submitted plan at `info` (with a site's
/// opted-out person ids in its filters), and its client does at `debug`.
const CAPPED_AT_WARN: &[&str] = &[
    "ballista",
    "ballista_core",
    "ballista_scheduler",
    "ballista_executor",
];

/// Log to stderr, filtered by `RUST_LOG` (else `default`).
pub(super) fn init(default: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    for target in CAPPED_AT_WARN {
        if let Ok(directive) = format!("{target}=warn").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
