use std::sync::Arc;

use super::*;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ihdsi-ledger-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir.join("budget.jsonl")
}

#[test]
fn concurrent_charges_never_overspend_and_the_ledger_is_their_sum() {
    let path = tmp("concurrent");
    let ledger = Arc::new(BudgetLedger::open(&path).expect("open"));
    let total = Rho(NANO); // ρ = 1
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || {
                let mut granted = 0u64;
                for i in 0..40u64 {
                    // Costs from 1 to ~5 % of the budget, varied per thread.
                    let cost = Rho(1 + (t * 7_919 + i * 104_729) % (NANO / 20));
                    match ledger.charge("P-1", &format!("q{t}-{i}"), cost, total) {
                        Ok(c) => {
                            assert!(c.spent <= total);
                            granted += cost.0;
                        }
                        Err(LedgerError::Exhausted { remaining, .. }) => {
                            assert!(remaining.0 < cost.0);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                granted
            })
        })
        .collect();
    let granted: u64 = threads.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(ledger.spent("P-1").0, granted);
    assert!(granted <= total.0);
    assert!(
        granted > total.0 * 9 / 10,
        "640 charges of up to 5 % must nearly exhaust the budget"
    );
    drop(ledger);

    // The budget survives a restart: replaying the file gives the same sum.
    let reopened = BudgetLedger::open(&path).expect("reopen");
    assert_eq!(reopened.spent("P-1").0, granted);
    assert_eq!(reopened.spent("P-2").0, 0);
    let lines = std::fs::read_to_string(&path).expect("read");
    let sum: u64 = lines
        .lines()
        .map(|l| serde_json::from_str::<Charge>(l).expect("charge").nano_rho)
        .sum();
    assert_eq!(sum, granted);
}

#[test]
fn exhaustion_is_refused_with_the_numbers_and_nothing_is_charged() {
    let path = tmp("exhausted");
    let ledger = BudgetLedger::open(&path).expect("open");
    let total = Rho::from_f64_up(0.5).expect("rho");
    let cost = Rho::from_f64_up(0.2).expect("rho");
    ledger.charge("P-9", "a", cost, total).expect("first");
    ledger.charge("P-9", "b", cost, total).expect("second");
    let err = ledger.charge("P-9", "c", cost, total).expect_err("third");
    assert_eq!(
        err.to_string(),
        "privacy budget exhausted for P-9: the query costs ρ = 0.200000000, 0.100000000 of 0.500000000 remain"
    );
    assert_eq!(ledger.spent("P-9"), Rho::from_f64_up(0.4).expect("rho"));
    assert!(BudgetLedger::open(&path).is_err(), "one writer per ledger");
}

#[test]
fn costs_round_up_and_damage_is_refused() {
    assert_eq!(Rho::from_f64_up(1e-10), Some(Rho(1)));
    assert_eq!(Rho::from_f64_up(-1.0), None);
    assert_eq!(Rho::from_f64_up(f64::NAN), None);
    let path = tmp("damaged");
    std::fs::write(
        &path,
        "{\"principal\":\"P\",\"query_id\":\"q\",\"nano_rho\":5,\"time\":\"t\"}\nnot json\n",
    )
    .expect("write");
    let err = BudgetLedger::open(&path).expect_err("damaged");
    assert!(err.to_string().contains("line 2"), "{err}");
}
