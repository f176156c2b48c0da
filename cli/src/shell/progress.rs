//! Live per-site progress lines, redrawn in place on standard error.
//!
//! The shell tags its query with a request id and polls the coordinator's
//! `ihdsi.progress` action a few times a second. Each poll redraws one line
//! per site: its state and how long it has been working. When the query
//! ends, the final state stays on screen above the result.

use std::io::Write;
use std::time::Duration;

use ihdsi_engine::tasks::SpawnedTask;
use ihdsi_engine::{SiteProgress, SiteState};
use tokio::sync::oneshot;

use crate::client::Connection;

const POLL: Duration = Duration::from_millis(200);

/// A running progress display.
#[derive(Debug)]
pub(super) struct Display {
    stop: oneshot::Sender<()>,
    task: SpawnedTask<()>,
}

impl Display {
    /// Start polling and drawing.
    pub(super) fn start(connection: Connection, request_id: String) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = SpawnedTask::spawn(async move {
            let mut drawn = 0;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(POLL) => {}
                }
                if let Ok(lines) = connection.progress(&request_id).await {
                    drawn = redraw(drawn, &lines);
                }
            }
            // One last poll, so the final state of every site is shown.
            if let Ok(lines) = connection.progress(&request_id).await {
                redraw(drawn, &lines);
            }
        });
        Self { stop, task }
    }

    /// Stop polling after drawing the final state.
    pub(super) async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Replace the `drawn` lines above the cursor with `lines`; returns how
/// many lines are now drawn.
fn redraw(drawn: usize, lines: &[SiteProgress]) -> usize {
    let mut out = std::io::stderr().lock();
    for _ in 0..drawn {
        let _ = write!(out, "\x1b[1A\x1b[2K");
    }
    let releases = lines.iter().map(|l| l.release).max().unwrap_or(0);
    for l in lines {
        let _ = writeln!(out, "{}", line(l, releases > 0));
    }
    let _ = out.flush();
    lines.len()
}

/// One progress line, e.g. `  site lu    answered   0.42 s`.
fn line(l: &SiteProgress, show_release: bool) -> String {
    let state = match l.state {
        SiteState::Running => "running",
        SiteState::Answered => "answered",
        SiteState::Failed => "failed",
        SiteState::Cancelled => "cancelled",
    };
    let release = if show_release {
        format!(" release {}", l.release)
    } else {
        String::new()
    };
    format!(
        "  site {:<6}{release} {state:<9} {:>6.2} s",
        l.site,
        l.elapsed_ms as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_site_state_and_time() {
        let l = SiteProgress {
            site: "lu".into(),
            release: 1,
            state: SiteState::Running,
            elapsed_ms: 1234,
        };
        assert_eq!(line(&l, false), "  site lu     running     1.23 s");
        assert_eq!(line(&l, true), "  site lu     release 1 running     1.23 s");
    }
}
