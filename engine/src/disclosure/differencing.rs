//! An advisory differencing detector for the audit trail.
//!
//! Two thresholded answers whose cohorts differ by a few patients reveal
//! those patients' contribution by subtraction (A06, A09, A19 of the
//! privacy anchors): "all patients born before 1960" minus "all patients
//! born before 1960 except those born on 3 March 1931". Threshold mode
//! cannot refuse such pairs without refusing ordinary work, so it flags
//! them for the data stewards: when an analyst's new release has the same
//! shape as an earlier one (same tables, same group keys and aggregates;
//! only the filters differ) and some group's exact patient count differs
//! from the earlier one by at least 1 and fewer than `k` patients, the pair
//! goes on the coordinator's audit trail. The analyst is not told.
//!
//! The detector keeps, per analyst, the exact patient counts of recent
//! released groups in memory only (never on disk or in logs) and names
//! only the two query ids in its findings.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use datafusion::common::ScalarValue;
use ihdsi_planner::Release;

/// Releases remembered per analyst.
const HISTORY: usize = 256;
/// Groups remembered per release (bounds memory for very fine groupings;
/// a differencing pair is about a few cohorts, not thousands of cells).
const GROUPS: usize = 4_096;

/// A released group: its key values and exact distinct-patient count.
pub use crate::merge::GroupCount;

#[derive(Debug)]
struct Seen {
    query_id: String,
    shape: String,
    groups: HashMap<Vec<ScalarValue>, i64>,
}

/// Flags pairs of same-shape releases whose groups differ by fewer than
/// `k` patients.
#[derive(Debug)]
pub struct DifferencingDetector {
    k: i64,
    history: Mutex<HashMap<String, VecDeque<Seen>>>,
}

/// What two releases have in common when only their filters differ: the
/// patient tables and the site SQL's select list (group keys and
/// aggregates), which precedes its first `FROM`.
pub fn shape(release: &Release) -> String {
    let select = release
        .site_sql
        .split(" FROM ")
        .next()
        .unwrap_or(&release.site_sql);
    let tables: Vec<&str> = release.tables.iter().map(String::as_str).collect();
    format!("{} | {select}", tables.join(","))
}

impl DifferencingDetector {
    /// A detector flagging differences below `k` patients.
    pub fn new(k: u64) -> Self {
        Self {
            k: i64::try_from(k).unwrap_or(i64::MAX),
            history: Mutex::new(HashMap::new()),
        }
    }

    /// Record `analyst`'s release of `groups` in `query_id`; return the ids
    /// of earlier queries it forms a differencing pair with.
    pub fn observe(
        &self,
        analyst: &str,
        query_id: &str,
        release: &Release,
        groups: Vec<GroupCount>,
    ) -> Vec<String> {
        let seen = Seen {
            query_id: query_id.to_string(),
            shape: shape(release),
            groups: groups.into_iter().take(GROUPS).collect(),
        };
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let past = history.entry(analyst.to_string()).or_default();
        let mut pairs: Vec<String> = past
            .iter()
            .filter(|p| p.shape == seen.shape && p.query_id != seen.query_id)
            .filter(|p| self.close(p, &seen))
            .map(|p| p.query_id.clone())
            .collect();
        pairs.dedup();
        past.push_back(seen);
        if past.len() > HISTORY {
            past.pop_front();
        }
        pairs
    }

    /// Some group present in both differs by 1 ..< k patients.
    fn close(&self, a: &Seen, b: &Seen) -> bool {
        b.groups.iter().any(|(key, n)| {
            a.groups
                .get(key)
                .is_some_and(|m| (1..self.k).contains(&(n - m).abs()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::first_release as release;

    fn one(n: i64) -> Vec<GroupCount> {
        vec![(vec![], n)]
    }

    #[tokio::test]
    async fn same_shape_releases_a_few_patients_apart_are_flagged() {
        let d = DifferencingDetector::new(10);
        let all = release("SELECT count(DISTINCT person_id) FROM person").await;
        let some =
            release("SELECT count(DISTINCT person_id) FROM person WHERE year_of_birth <> 1931")
                .await;
        let other = release("SELECT count(*) FROM person WHERE year_of_birth <> 1931").await;
        assert_eq!(shape(&all), shape(&some));
        assert_ne!(shape(&all), shape(&other));
        assert!(d.observe("a", "q1", &all, one(6000)).is_empty());
        // 3 patients apart: a differencing pair.
        assert_eq!(d.observe("a", "q2", &some, one(5997)), vec!["q1"]);
        // Another analyst's history is separate; a different shape is not
        // compared; 10 or more apart, or identical, is not flagged.
        assert!(d.observe("b", "q3", &some, one(5999)).is_empty());
        assert!(d.observe("a", "q4", &other, one(5999)).is_empty());
        assert!(d.observe("a", "q5", &some, one(5987)).is_empty());
        assert!(d.observe("a", "q6", &some, one(5987)).is_empty());
    }
}
