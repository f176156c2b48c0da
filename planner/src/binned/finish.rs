//! Finishing a statistic from bins: the Kaplan–Meier curve and its
//! summary, the log-rank test and the cumulative incidence, as the Arrow
//! values the SQL functions return. The arithmetic is `ihdsi_statistics`;
//! this is only its shape in SQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::error::DataFusionError;
use ihdsi_statistics::competing::{CompetingBin, cumulative_incidence};
use ihdsi_statistics::{Bin, Curve, Stratum, histogram, kaplan_meier, logrank};

/// What a statistic function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Statistic {
    /// `kaplan_meier`: the curve, a point per released bin.
    Curve,
    /// `survival_summary`: median with its interval, restricted mean.
    Summary,
    /// `logrank_test`: χ², degrees of freedom, p-value.
    LogRank,
    /// `cumulative_incidence`: the Aalen–Johansen curve of cause 1.
    Incidence,
    /// `histogram`: patients per bin of a value.
    Histogram,
    /// `quantile`, `median`, `percentile_cont`: the end of the bin that
    /// holds the quantile.
    Quantile,
}

/// One bin as released: its group and stratum (for the log-rank test,
/// empty otherwise), end, events, competing events and all leaving.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub group: String,
    pub stratum: String,
    pub bin: f64,
    pub events: i64,
    pub competing: i64,
    pub leaving: i64,
}

fn field(name: &str, t: DataType) -> Field {
    Field::new(name, t, true)
}

fn curve_fields() -> Fields {
    use DataType::{Float64 as F, Int64 as I};
    Fields::from(vec![
        field("time", F),
        field("at_risk", I),
        field("events", I),
        field("censored", I),
        field("survival", F),
        field("std_error", F),
        field("lower_95", F),
        field("upper_95", F),
    ])
}

fn summary_fields() -> Fields {
    use DataType::Float64 as F;
    Fields::from(vec![
        field("median", F),
        field("median_lower_95", F),
        field("median_upper_95", F),
        field("rmst", F),
        field("rmst_horizon", F),
    ])
}

fn logrank_fields() -> Fields {
    use DataType::{Float64 as F, Int64 as I};
    Fields::from(vec![
        field("statistic", F),
        field("df", I),
        field("p_value", F),
    ])
}

fn incidence_fields() -> Fields {
    use DataType::{Float64 as F, Int64 as I};
    Fields::from(vec![
        field("time", F),
        field("at_risk", I),
        field("events", I),
        field("competing", I),
        field("censored", I),
        field("incidence", F),
        field("std_error", F),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true)))
}

impl Statistic {
    /// The SQL type the function returns.
    pub fn return_type(self) -> DataType {
        match self {
            Self::Curve => list_of(curve_fields()),
            Self::Summary => DataType::Struct(summary_fields()),
            Self::LogRank => DataType::Struct(logrank_fields()),
            Self::Incidence => list_of(incidence_fields()),
            Self::Histogram => list_of(histogram_fields()),
            Self::Quantile => DataType::Float64,
        }
    }

    /// The statistic of `records`; `parameter` is the summary's horizon or
    /// the quantile's probability. A statistic that cannot be computed from
    /// what was released (a log-rank test with one arm left, a stratum
    /// withheld) is NULL, never an error: an error would tell what the rules
    /// withheld.
    pub fn finish(self, records: &[Record], parameter: f64) -> DfResult<ScalarValue> {
        match self.compute(records, parameter) {
            Ok(v) => Ok(v),
            Err(_) => ScalarValue::try_from(&self.return_type()),
        }
    }

    fn compute(self, records: &[Record], parameter: f64) -> DfResult<ScalarValue> {
        let horizon = parameter;
        match self {
            Self::Histogram => Ok(histogram(records)),
            Self::Quantile => Ok(ScalarValue::Float64(quantile(records, parameter))),
            Self::Curve => Ok(list(curve_fields(), curve_columns(&km(records)?))),
            Self::Summary => summary(&km(records)?, horizon),
            Self::LogRank => logrank_value(records),
            Self::Incidence => incidence(records),
        }
    }
}

fn failed(e: ihdsi_statistics::StatisticsError) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The bins of `records`, merged by time, in time order.
fn stratum<'a>(records: impl Iterator<Item = &'a Record>) -> DfResult<Stratum> {
    let mut bins: BTreeMap<u64, Bin> = BTreeMap::new();
    for r in records {
        // −0.0 (a time just below 0) is the bin 0.
        let time = r.bin + 0.0;
        let bin = bins.entry(time.to_bits()).or_insert(Bin {
            time,
            events: 0,
            censored: 0,
        });
        bin.events += count(r.events);
        bin.censored += count(r.leaving).saturating_sub(count(r.events));
    }
    let mut bins: Vec<Bin> = bins.into_values().collect();
    bins.sort_by(|a, b| a.time.total_cmp(&b.time));
    Stratum::new(bins).map_err(failed)
}

fn km(records: &[Record]) -> DfResult<Curve> {
    kaplan_meier::curve(&stratum(records.iter())?, 0.95).map_err(failed)
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn curve_columns(c: &Curve) -> Vec<ArrayRef> {
    let p = &c.points;
    let f = |g: fn(&ihdsi_statistics::CurvePoint) -> f64| -> ArrayRef { floats(p.iter().map(g)) };
    let i = |g: fn(&ihdsi_statistics::CurvePoint) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(p.iter().map(|x| signed(g(x)))))
    };
    vec![
        f(|x| x.time),
        i(|x| x.at_risk),
        i(|x| x.events),
        i(|x| x.censored),
        f(|x| x.survival),
        f(|x| x.std_error),
        f(|x| x.lower),
        f(|x| x.upper),
    ]
}

/// A list value of one row of structs with `columns`.
fn list(fields: Fields, columns: Vec<ArrayRef>) -> ScalarValue {
    let n = columns.first().map_or(0, |c| c.len());
    let points = StructArray::new(fields.clone(), columns, None);
    ScalarValue::List(Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(fields), true)),
        OffsetBuffer::from_lengths([n]),
        Arc::new(points),
        None,
    )))
}

fn one_struct(fields: Fields, columns: Vec<ArrayRef>) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
        fields, columns, None,
    )?)))
}

/// A value that cannot be computed (a standard error where everyone left,
/// a test without variance) is NULL, as SQL says "unknown", never NaN or
/// an infinity.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn floats(values: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(values.map(finite).collect::<Float64Array>())
}

fn float(v: Option<f64>) -> ArrayRef {
    Arc::new(Float64Array::from(vec![v.and_then(finite)]))
}

fn summary(c: &Curve, horizon: f64) -> DfResult<ScalarValue> {
    if c.points.is_empty() {
        // A withheld stratum: no curve, nothing to summarise.
        let none = || float(None);
        return one_struct(
            summary_fields(),
            vec![none(), none(), none(), none(), none()],
        );
    }
    let median = c.median();
    let rmst = Some(c.restricted_mean(horizon));
    one_struct(
        summary_fields(),
        vec![
            float(median.time),
            float(median.lower),
            float(median.upper),
            float(rmst),
            float(Some(horizon)),
        ],
    )
}

fn logrank_value(records: &[Record]) -> DfResult<ScalarValue> {
    let groups: Vec<&str> = sorted_unique(records.iter().map(|r| r.group.as_str()));
    let strata: Vec<&str> = sorted_unique(records.iter().map(|r| r.stratum.as_str()));
    let table = strata
        .iter()
        .map(|s| {
            groups
                .iter()
                .map(|g| stratum(records.iter().filter(|r| r.stratum == *s && r.group == *g)))
                .collect::<DfResult<Vec<_>>>()
        })
        .collect::<DfResult<Vec<_>>>()?;
    let test = logrank::stratified(&table).map_err(failed)?;
    one_struct(
        logrank_fields(),
        vec![
            float(Some(test.statistic)),
            Arc::new(Int64Array::from(vec![signed(
                test.degrees_of_freedom as u64,
            )])),
            float(Some(test.p_value)),
        ],
    )
}

fn sorted_unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = values.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn incidence(records: &[Record]) -> DfResult<ScalarValue> {
    let mut bins: BTreeMap<u64, CompetingBin> = BTreeMap::new();
    for r in records {
        let time = r.bin + 0.0;
        let bin = bins.entry(time.to_bits()).or_insert(CompetingBin {
            time,
            events: vec![0, 0],
            censored: 0,
        });
        bin.events[0] += count(r.events);
        bin.events[1] += count(r.competing);
        bin.censored += count(r.leaving)
            .saturating_sub(count(r.events))
            .saturating_sub(count(r.competing));
    }
    let mut bins: Vec<CompetingBin> = bins.into_values().collect();
    bins.sort_by(|a, b| a.time.total_cmp(&b.time));
    let points = cumulative_incidence(&bins).map_err(failed)?;
    let at = |i: usize| &bins[i];
    let n = points.len();
    let columns: Vec<ArrayRef> = vec![
        floats(points.iter().map(|p| p.time)),
        Arc::new(Int64Array::from_iter_values(
            points.iter().map(|p| signed(p.at_risk)),
        )),
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| signed(at(i).events[0])),
        )),
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| signed(at(i).events[1])),
        )),
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| signed(at(i).censored)),
        )),
        floats(points.iter().map(|p| p.incidence[0])),
        floats(points.iter().map(|p| p.std_error[0])),
    ];
    Ok(list(incidence_fields(), columns))
}

fn histogram_fields() -> Fields {
    use DataType::{Float64 as F, Int64 as I};
    Fields::from(vec![
        field("lower", F),
        field("upper", F),
        field("patients", I),
    ])
}

/// Patients per bin, in value order, merged by bin end.
fn value_bins(records: &[Record]) -> Vec<(f64, i64)> {
    histogram::by_end(records.iter().map(|r| (r.bin, r.leaving)))
}

/// Bins `(lower, upper]`: the first open below, the last open above (it
/// holds every larger value, whose largest would rest on one patient).
fn histogram(records: &[Record]) -> ScalarValue {
    let bins = histogram::histogram(&value_bins(records));
    let lower: Float64Array = bins.iter().map(|b| b.lower).collect();
    let upper: Float64Array = bins.iter().map(|b| b.upper).collect();
    let patients = Int64Array::from_iter_values(bins.iter().map(|b| b.patients));
    list(
        histogram_fields(),
        vec![Arc::new(lower), Arc::new(upper), Arc::new(patients)],
    )
}

/// The end of the bin holding the `p` quantile, or NULL without values
/// ([`histogram::quantile`]).
fn quantile(records: &[Record], p: f64) -> Option<f64> {
    histogram::quantile(&value_bins(records), p)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;

    use super::{Record, ScalarValue, Statistic};

    fn record(bin: f64, events: i64, competing: i64, leaving: i64) -> Record {
        Record {
            group: String::new(),
            stratum: String::new(),
            bin,
            events,
            competing,
            leaving,
        }
    }

    fn points(statistic: Statistic, records: &[Record]) -> datafusion::arrow::array::StructArray {
        let ScalarValue::List(list) = statistic.finish(records, 0.0).expect("finished") else {
            panic!("{statistic:?} is a list");
        };
        list.value(0).as_struct().clone()
    }

    /// Where everyone at risk has the event, the Aalen–Johansen standard
    /// error is undefined: NULL, never NaN; and no statistic's value is
    /// NaN or infinite there.
    #[test]
    fn undefined_values_are_null_not_nan() {
        let records = [record(30.0, 1, 0, 4), record(60.0, 3, 0, 3)];
        let incidence = points(Statistic::Incidence, &records);
        let std_error = incidence.column(6).as_primitive::<Float64Type>();
        assert!(
            std_error.is_valid(0) && std_error.is_null(1),
            "{std_error:?}"
        );
        for statistic in [Statistic::Incidence, Statistic::Curve] {
            let points = points(statistic, &records);
            for column in points.columns() {
                if let Some(values) = column.as_primitive_opt::<Float64Type>() {
                    assert!(
                        values.iter().flatten().all(f64::is_finite),
                        "{statistic:?}: {values:?}"
                    );
                }
            }
        }
    }
}
