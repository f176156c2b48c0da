//! Live progress of one federated query: which site is working on which
//! release, and for how long.
//!
//! Sites answer at very different speeds (a national registry and a small
//! clinic), and an analyst waiting on a query wants to see whom it waits
//! for. Only states and elapsed times are recorded: no row counts, group
//! counts or byte counts per site, which would leak site-level sizes the
//! analyst could not get through a thresholded `GROUP BY site`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Where one site stands on one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteState {
    /// The subplan was sent; no complete answer yet.
    Running,
    /// The site's partials arrived.
    Answered,
    /// The site was unreachable or refused.
    Failed,
    /// Another site failed first, so this site's request was dropped.
    Cancelled,
}

/// One line of progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteProgress {
    pub site: String,
    pub release: usize,
    pub state: SiteState,
    /// Milliseconds since the subplan was sent (frozen once finished).
    pub elapsed_ms: u64,
}

#[derive(Debug)]
struct Entry {
    site: String,
    release: usize,
    state: SiteState,
    started: Instant,
    finished: Option<Instant>,
}

impl Entry {
    /// A request still running was dropped.
    fn cancel(&mut self, now: Instant) {
        if self.state == SiteState::Running {
            self.state = SiteState::Cancelled;
            self.finished = Some(now);
        }
    }
}

/// Shared, cheaply cloned progress record of one query.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A subplan went out to `site`; returns the entry's index.
    pub fn started(&self, site: &str, release: usize) -> usize {
        let mut entries = self.lock();
        entries.push(Entry {
            site: site.to_string(),
            release,
            state: SiteState::Running,
            started: Instant::now(),
            finished: None,
        });
        entries.len() - 1
    }

    /// The subplan at `index` finished.
    pub fn finished(&self, index: usize, answered: bool) {
        if let Some(e) = self.lock().get_mut(index) {
            e.state = if answered {
                SiteState::Answered
            } else {
                SiteState::Failed
            };
            e.finished = Some(Instant::now());
        }
    }

    /// A guard for the subplan at `index`: if it is dropped before
    /// [`SubplanGuard::finish`] (the request was aborted: another site
    /// failed, the analyst went away, a deadline passed), the line reads
    /// `cancelled`.
    pub fn guard(&self, index: usize) -> SubplanGuard {
        SubplanGuard {
            progress: self.clone(),
            index,
            finished: false,
        }
    }

    fn cancel(&self, index: usize) {
        if let Some(e) = self.lock().get_mut(index) {
            e.cancel(Instant::now());
        }
    }

    /// Every subplan still running was dropped (another site failed).
    pub fn cancel_running(&self) {
        let now = Instant::now();
        self.lock().iter_mut().for_each(|e| e.cancel(now));
    }

    /// Whether some site is still working.
    pub fn running(&self) -> bool {
        self.lock().iter().any(|e| e.state == SiteState::Running)
    }

    /// The current state, ordered by release then site.
    pub fn snapshot(&self) -> Vec<SiteProgress> {
        let now = Instant::now();
        let mut lines: Vec<SiteProgress> = self
            .lock()
            .iter()
            .map(|e| SiteProgress {
                site: e.site.clone(),
                release: e.release,
                state: e.state,
                elapsed_ms: e
                    .finished
                    .unwrap_or(now)
                    .duration_since(e.started)
                    .as_millis() as u64,
            })
            .collect();
        lines.sort_by(|a, b| (a.release, &a.site).cmp(&(b.release, &b.site)));
        lines
    }
}

/// Marks its subplan `cancelled` unless finished first (see
/// [`Progress::guard`]).
#[derive(Debug)]
pub struct SubplanGuard {
    progress: Progress,
    index: usize,
    finished: bool,
}

impl SubplanGuard {
    /// The subplan finished, answered or not.
    pub fn finish(mut self, answered: bool) {
        self.finished = true;
        self.progress.finished(self.index, answered);
    }

    /// The subplan failed in a way whose site may not be told (a failure
    /// while running depends on that site's data): its line stays as it
    /// is, for [`Progress::cancel_running`] to mark `cancelled` at the
    /// same moment as every other site's, so the progress does not point
    /// at the site either.
    pub fn finish_untold(mut self) {
        self.finished = true;
    }
}

impl Drop for SubplanGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.progress.cancel(self.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_move_from_running_to_answered_or_failed() {
        let p = Progress::default();
        let us = p.started("us", 0);
        let lu = p.started("lu", 0);
        p.finished(us, true);
        p.finished(lu, false);
        let kr = p.started("kr", 0);
        let lines = p.snapshot();
        let states: Vec<(&str, SiteState)> =
            lines.iter().map(|l| (l.site.as_str(), l.state)).collect();
        assert_eq!(
            states,
            vec![
                ("kr", SiteState::Running),
                ("lu", SiteState::Failed),
                ("us", SiteState::Answered)
            ]
        );
        assert!(p.running());
        p.finished(kr, true);
        assert!(!p.running());
        let json = serde_json::to_string(&p.snapshot()).expect("json");
        assert!(json.contains("\"state\":\"answered\""), "{json}");
    }
}
