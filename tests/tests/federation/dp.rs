//! The attack catalogue (privacy anchors §4.1) against differential-privacy
//! mode, on the three-site fixture with planted victims. Deterministic
//! defences are asserted exactly; statistical attacks are played as
//! distinguishing games (`ihdsi_tests::dp`) whose success must stay within
//! the Gaussian-mechanism bound for the ρ the adversary was charged, while
//! the same attack against threshold mode (exact answers) always wins.

use futures::StreamExt;
use ihdsi_flight_server::client::{Connection, QueryResult};
use ihdsi_tests::dp::{Game, Permits, coins, dp_federation, scalar, scratch};
use ihdsi_tests::planted::{V1_CONDITION, V2_MEASUREMENT, planted};
use ihdsi_tests::{cohort, connect, federation, policy};

const BLADDER: i32 = 197_508;
const HBA1C: i32 = 3_004_410;

async fn ask(c: &Connection, sql: &str) -> Result<QueryResult, String> {
    c.query(sql).await.map_err(|e| e.to_string())
}

/// Play `trials` rounds: the coin picks `d0` or `d1`, the adversary asks
/// `queries` under a fresh permit and guesses b = 1 when `stat` of the
/// answers exceeds `cut`. Returns the game and the ρ charged per trial.
async fn play(
    d0: &str,
    d1: &str,
    queries: &[String],
    stat: fn(&[f64]) -> f64,
    cut: f64,
    trials: usize,
    seed: u64,
) -> Game {
    let permits = Permits::default();
    let base = [connect(d0).await, connect(d1).await];
    let results = futures::stream::iter(coins(trials, seed))
        .map(|b| {
            let (_, token) = permits.fresh(Some(100.0));
            let c = base[usize::from(b)].with_permit(&token);
            async move {
                let mut answers = Vec::new();
                for q in queries {
                    let r = ask(&c, q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
                    answers.push(scalar(&r));
                }
                (b, stat(&answers) > cut)
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    let wins = results.iter().filter(|(b, guess)| b == guess).count();
    Game {
        trials,
        wins,
        rho: 0.1 * queries.len() as f64,
        delta: 1e-6,
    }
}

fn count_patients(filter: &str) -> String {
    format!("SELECT count(DISTINCT person_id) FROM condition_occurrence WHERE {filter}")
}

/// The differencing attacks, as (name, queries, statistic, cut). Each
/// statistic is the victim's contribution under exact answers: 1 patient
/// (V1) or V2's clamped sum.
fn differencing() -> Vec<(&'static str, Vec<String>, fn(&[f64]) -> f64, f64)> {
    let v1 = format!("condition_concept_id = {V1_CONDITION}");
    // The common cohort excludes the victim on both datasets, so adding the
    // victim's code adds exactly one patient when the victim exists.
    let common = format!(
        "condition_concept_id = {BLADDER} AND person_id NOT IN (SELECT person_id FROM condition_occurrence WHERE {v1})"
    );
    let tracker = |c: &str| format!("SELECT count(DISTINCT person_id) FROM person WHERE {c}");
    let victim = format!("person_id IN (SELECT person_id FROM condition_occurrence WHERE {v1})");
    vec![
        (
            "A06 differencing (cohort vs cohort without the victim)",
            vec![
                count_patients(&format!("{common} OR {v1}")),
                count_patients(&common),
            ],
            |a| a[0] - a[1],
            0.5,
        ),
        (
            "A09 tracker (q(C∨T) + q(C∨¬T) − q(T) − q(¬T))",
            vec![
                tracker(&format!("{victim} OR gender_concept_id = 8507")),
                tracker(&format!("{victim} OR gender_concept_id <> 8507")),
                tracker("gender_concept_id = 8507"),
                tracker("gender_concept_id <> 8507"),
            ],
            |a| a[0] + a[1] - a[2] - a[3],
            0.5,
        ),
        (
            "A19 site subsets (all sites vs all but the victim's)",
            vec![
                count_patients(&format!("(({common}) OR {v1})")),
                count_patients(&format!("(({common}) OR {v1}) AND site <> 'lu'")),
                count_patients(&format!("({common}) AND site = 'lu'")),
            ],
            |a| a[0] - a[1] - a[2],
            0.5,
        ),
        (
            "A05 outlier sum (V2's 600 rows, clamped to 10 × 1000)",
            vec![
                format!(
                    "SELECT sum(value_as_number) FROM measurement WHERE measurement_concept_id IN ({HBA1C}, {V2_MEASUREMENT})"
                ),
                format!(
                    "SELECT sum(value_as_number) FROM measurement WHERE measurement_concept_id = {HBA1C}"
                ),
            ],
            |a| a[0] - a[1],
            1.0,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differencing_attacks_win_against_exact_answers_and_are_bounded_in_dp_mode() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    // Negative control: exact answers (threshold mode) give the victim away.
    let exact = [
        federation(&clean, policy(10, false), policy(1, false)).await,
        federation(&victims, policy(10, false), policy(1, false)).await,
    ];
    let mut failures = Vec::new();
    for (name, queries, stat, cut) in differencing() {
        let mut guesses = Vec::new();
        for f in &exact {
            let c = connect(&f.uri).await;
            let mut a = Vec::new();
            for q in &queries {
                a.push(scalar(
                    &ask(&c, q).await.unwrap_or_else(|e| panic!("{q}: {e}")),
                ));
            }
            guesses.push(stat(&a) > cut);
        }
        if guesses != [false, true] {
            failures.push(format!("{name}: the attack does not work against exact answers ({guesses:?}), so it proves nothing"));
        }
    }
    for f in exact {
        f.shutdown().await;
    }

    let dir = scratch("games");
    let d0 = dp_federation(&clean, &dir.join("d0.jsonl"), 1.0).await;
    let d1 = dp_federation(&victims, &dir.join("d1.jsonl"), 1.0).await;
    for (i, (name, queries, stat, cut)) in differencing().into_iter().enumerate() {
        let game = play(&d0.uri, &d1.uri, &queries, stat, cut, 200, 11 + i as u64).await;
        println!("{name}: {game}");
        if !game.within_bound() {
            failures.push(format!("{name}: {game}"));
        }
    }
    d0.shutdown().await;
    d1.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
