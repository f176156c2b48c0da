//! The size and case mix of each reference site, and of any other site id.

use ihdsi_catalog::vocabulary::*;

/// Size and case mix of one site.
#[derive(Debug, Clone)]
pub struct SiteProfile {
    /// Relative share of all persons.
    pub weight: f64,
    /// Prevalence of bladder cancer.
    pub bladder: f64,
    /// Prevalence of Parkinson's disease.
    pub parkinson: f64,
    /// Race concept distribution.
    pub races: Vec<(i32, f64)>,
    /// Share of Hispanic or Latino ethnicity.
    pub hispanic: f64,
    /// Carrier frequency of LRRK2 G2019S among Parkinson's patients.
    pub lrrk2: f64,
}

impl SiteProfile {
    /// The profile of a known site id, or a generic one.
    pub fn for_site(id: &str) -> Self {
        match id {
            "lu" => Self {
                weight: 0.2,
                bladder: 0.04,
                parkinson: 0.008,
                races: vec![
                    (WHITE, 0.90),
                    (BLACK, 0.03),
                    (ASIAN, 0.04),
                    (NO_MATCHING_CONCEPT, 0.03),
                ],
                hispanic: 0.02,
                lrrk2: 0.03,
            },
            "us" => Self {
                weight: 0.5,
                bladder: 0.012,
                parkinson: 0.01,
                races: vec![
                    (WHITE, 0.61),
                    (BLACK, 0.13),
                    (ASIAN, 0.06),
                    (AMERICAN_INDIAN, 0.01),
                    (PACIFIC_ISLANDER, 0.003),
                    (NO_MATCHING_CONCEPT, 0.187),
                ],
                hispanic: 0.18,
                lrrk2: 0.04,
            },
            "kr" => Self {
                weight: 0.3,
                bladder: 0.006,
                parkinson: 0.04,
                races: vec![(ASIAN, 0.975), (WHITE, 0.01), (NO_MATCHING_CONCEPT, 0.015)],
                hispanic: 0.0,
                lrrk2: 0.01,
            },
            _ => Self {
                weight: 0.3,
                bladder: 0.01,
                parkinson: 0.01,
                races: vec![
                    (WHITE, 0.7),
                    (BLACK, 0.1),
                    (ASIAN, 0.1),
                    (NO_MATCHING_CONCEPT, 0.1),
                ],
                hispanic: 0.1,
                lrrk2: 0.03,
            },
        }
    }
}
