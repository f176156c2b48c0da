//! The attack catalogue (privacy anchors §4.1) against differential-privacy
//! mode, on the three-site fixture with planted victims. Deterministic
//! defences are asserted exactly; statistical attacks are played as
//! distinguishing games (`ihdsi_tests::dp`) whose success must stay within
//! the Gaussian-mechanism bound for the ρ the adversary was charged, while
//! the same attack against threshold mode (exact answers) always wins.

use futures::StreamExt;
use ihdsi_cli::client::{Connection, QueryResult};
use ihdsi_tests::dp::{Game, Permits, coins, dp_federation, numbers, scratch};
use ihdsi_tests::planted::{V1_CONDITION, V2_MEASUREMENT, planted};
use ihdsi_tests::{cohort, connect, federation, policy};

const BLADDER: i32 = 197_508;
const HBA1C: i32 = 3_004_410;

async fn ask(c: &Connection, sql: &str) -> Result<QueryResult, String> {
    c.query(sql).await.map_err(|e| e.to_string())
}

/// The adversary's view of one answer: the last column's numbers, row by
/// row (a suppressed scalar is no row at all).
async fn view(c: &Connection, q: &str) -> Vec<f64> {
    numbers(&ask(c, q).await.unwrap_or_else(|e| panic!("{q}: {e}")))
}

/// Play `trials` rounds: the coin picks `d0` or `d1`, the adversary asks
/// `queries` under a fresh permit and guesses b = 1 when `stat` of the
/// answers exceeds `cut`. Returns the game, charged ρ per trial included.
async fn play(d0: &str, d1: &str, attack: &Attack, cut: f64, trials: usize, seed: u64) -> Game {
    let permits = Permits::default();
    let base = [connect(d0).await, connect(d1).await];
    let results = futures::stream::iter(coins(trials, seed))
        .map(|b| {
            let (_, token) = permits.fresh(Some(100.0));
            let c = base[usize::from(b)].with_permit(&token);
            async move {
                let mut answers = Vec::new();
                for q in &attack.1 {
                    answers.push(view(&c, q).await);
                }
                (b, (attack.2)(&answers) > cut)
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    let wins = results.iter().filter(|(b, guess)| b == guess).count();
    Game {
        trials,
        wins,
        rho: 0.1 * attack.1.len() as f64,
        delta: 1e-6,
    }
}

fn first(a: &[f64]) -> f64 {
    a.first().copied().unwrap_or(0.0)
}

fn count_patients(filter: &str) -> String {
    format!("SELECT count(DISTINCT person_id) FROM condition_occurrence WHERE {filter}")
}

/// One differencing attack: its queries, and the statistic of their
/// answers that moves with the victim's presence under exact answers.
/// The adversary knows both worlds' exact statistics (the strongest
/// adversary) and guesses "present" above their midpoint.
type Attack = (&'static str, Vec<String>, fn(&[Vec<f64>]) -> f64);

fn differencing() -> Vec<Attack> {
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
            |a| first(&a[0]) - first(&a[1]),
        ),
        (
            "A09 tracker (q(C∨T) + q(C∨¬T) − q(T) − q(¬T))",
            vec![
                tracker(&format!("{victim} OR gender_concept_id = 8507")),
                tracker(&format!("{victim} OR gender_concept_id <> 8507")),
                tracker("gender_concept_id = 8507"),
                tracker("gender_concept_id <> 8507"),
            ],
            |a| first(&a[0]) + first(&a[1]) - first(&a[2]) - first(&a[3]),
        ),
        (
            "A19 site subsets (all sites vs all but the victim's)",
            vec![
                count_patients(&format!("(({common}) OR {v1})")),
                count_patients(&format!("(({common}) OR {v1}) AND site <> 'lu'")),
                count_patients(&format!("({common}) AND site = 'lu'")),
            ],
            |a| first(&a[0]) - first(&a[1]) - first(&a[2]),
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
            |a| first(&a[0]) - first(&a[1]),
        ),
        (
            "A11 total minus the visible cells",
            vec![
                format!(
                    "SELECT condition_concept_id, count(DISTINCT person_id) FROM condition_occurrence WHERE ({common}) OR {v1} GROUP BY 1"
                ),
                count_patients(&format!("({common}) OR {v1}")),
            ],
            |a| first(&a[1]) - a[0].iter().sum::<f64>(),
        ),
        (
            "A13 rows through a join (V2's 600 rows, capped at 10)",
            vec![
                format!(
                    "SELECT count(*) FROM measurement m JOIN person p ON m.person_id = p.person_id WHERE m.measurement_concept_id IN ({HBA1C}, {V2_MEASUREMENT})"
                ),
                format!(
                    "SELECT count(*) FROM measurement m JOIN person p ON m.person_id = p.person_id WHERE m.measurement_concept_id = {HBA1C}"
                ),
            ],
            |a| first(&a[0]) - first(&a[1]),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[expect(
    clippy::print_stdout,
    reason = "the games' figures are this test's evidence"
)]
async fn differencing_attacks_win_against_exact_answers_and_are_bounded_in_dp_mode() {
    let clean = cohort(6_000);
    let victims = planted(&clean).await;
    // Negative control: exact answers (threshold mode) give the victim away.
    let exact = [
        federation(&clean, policy(10, false), policy(1, false)).await,
        federation(&victims, policy(10, false), policy(1, false)).await,
    ];
    let mut failures = Vec::new();
    let mut cuts = Vec::new();
    for attack in differencing() {
        let mut stats = Vec::new();
        for f in &exact {
            let c = connect(&f.uri).await;
            let mut a = Vec::new();
            for q in &attack.1 {
                a.push(view(&c, q).await);
            }
            stats.push((attack.2)(&a));
        }
        // Against exact answers the victim always moves the statistic.
        if stats[1] - stats[0] < 0.5 {
            failures.push(format!("{}: the attack does not work against exact answers ({stats:?}), so it proves nothing", attack.0));
        }
        cuts.push((stats[0] + stats[1]) / 2.0);
    }
    for f in exact {
        f.shutdown().await;
    }

    let dir = scratch("games");
    let d0 = dp_federation(&clean, &dir.join("d0.jsonl"), 1.0).await;
    let d1 = dp_federation(&victims, &dir.join("d1.jsonl"), 1.0).await;
    for (i, (attack, cut)) in differencing().iter().zip(cuts).enumerate() {
        let game = play(&d0.uri, &d1.uri, attack, cut, 200, 11 + i as u64).await;
        println!("{}: {game}", attack.0);
        if !game.within_bound() {
            failures.push(format!("{}: {game}", attack.0));
        }
    }
    d0.shutdown().await;
    d1.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
