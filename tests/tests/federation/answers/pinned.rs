//! The SQL behaviour pinned in `tests/pinned/*.slt`: refusals, site SQL,
//! released rows and their metadata, written down so that a change to any
//! of them shows up in review as a diff (see `ihdsi_tests::pinned`).
//!
//! After a deliberate change, `scripts/slt --complete` (that is,
//! `IHDSI_SLT_COMPLETE=1 cargo test -p ihdsi-tests --test federation
//! pinned::`) rewrites the expected output; review it with `git diff
//! tests/pinned`.

use ihdsi_tests::pinned::{Federations, pinned_cohort, pinned_files};

/// Both federations start once, over the fixed cohort, and every file
/// runs against them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pinned_files_hold() {
    let data = pinned_cohort();
    let federations = Federations::start(&data).await;
    let failures = pinned_files(&federations).await;
    federations.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} pinned records differ; if the change is deliberate, run scripts/slt --complete and review the diff:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
