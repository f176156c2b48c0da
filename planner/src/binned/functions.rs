//! The SQL functions of survival analysis, and their finishing forms.
//!
//! The analyst writes `kaplan_meier`, `survival_summary`, `logrank_test`
//! or `cumulative_incidence` over a cohort; the planner rewrites the call
//! into a release of bins ([`super::expand`]) and finishes it above the
//! boundary with the same function's `ihdsi_finish_*` form, which reads
//! released bins and returns the same type. The analyst's form also runs
//! on patient rows: that is how a pooled DataFusion session (the test
//! suite's oracle) computes the same statistic. It is never sent to a
//! site.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::finish::{Record, Statistic};

/// The analyst's name of each statistic.
pub fn name(statistic: Statistic) -> &'static str {
    match statistic {
        Statistic::Curve => "kaplan_meier",
        Statistic::Summary => "survival_summary",
        Statistic::LogRank => "logrank_test",
        Statistic::Incidence => "cumulative_incidence",
        Statistic::Histogram => "histogram",
        Statistic::Quantile => "quantile",
    }
}

/// Every statistic, in the order they are registered.
const ALL: [Statistic; 6] = [
    Statistic::Curve,
    Statistic::Summary,
    Statistic::LogRank,
    Statistic::Incidence,
    Statistic::Histogram,
    Statistic::Quantile,
];

/// The statistic an analyst's function name asks for.
pub fn statistic(function: &str) -> Option<Statistic> {
    ALL.into_iter().find(|s| name(*s) == function)
}

/// Register the analyst's functions in `ctx`, for planning the analyst's
/// SQL (and for pooled sessions, which compute them on rows).
pub fn register(ctx: &SessionContext) {
    for s in ALL {
        ctx.register_udaf(AggregateUDF::from(StatisticUdf::on_rows(s)));
    }
}

/// `ihdsi_finish_<statistic>(group, stratum, bin, events, competing,
/// rows, horizon)` over released bins.
pub fn finish(statistic: Statistic, args: Vec<Expr>) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        Arc::new(AggregateUDF::from(StatisticUdf::on_bins(statistic))),
        args,
        false,
        None,
        vec![],
        None,
    ))
}

/// What a statistic function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Input {
    /// Patient rows, as the analyst wrote the call.
    Rows,
    /// Released bins, as the planner rewrote it.
    Bins,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct StatisticUdf {
    statistic: Statistic,
    input: Input,
    name: String,
    signature: Signature,
}

impl StatisticUdf {
    fn on_rows(statistic: Statistic) -> Self {
        let arity = match statistic {
            Statistic::Histogram => TypeSignature::Any(2),
            Statistic::Curve | Statistic::Incidence | Statistic::Quantile => TypeSignature::Any(3),
            Statistic::Summary => TypeSignature::Any(4),
            Statistic::LogRank => {
                TypeSignature::OneOf(vec![TypeSignature::Any(4), TypeSignature::Any(5)])
            }
        };
        Self {
            statistic,
            input: Input::Rows,
            name: name(statistic).to_string(),
            signature: Signature::new(arity, Volatility::Immutable),
        }
    }

    fn on_bins(statistic: Statistic) -> Self {
        use DataType::{Float64, Int64, Utf8};
        Self {
            statistic,
            input: Input::Bins,
            name: format!("ihdsi_finish_{}", name(statistic)),
            signature: Signature::exact(
                vec![Utf8, Utf8, Float64, Int64, Int64, Int64, Float64],
                Volatility::Immutable,
            ),
        }
    }
}

impl AggregateUDFImpl for StatisticUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.statistic.return_type())
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> DfResult<Vec<FieldRef>> {
        let list = |n: &str, t: DataType| {
            Arc::new(Field::new(
                format!("{}[{n}]", args.name),
                DataType::List(Arc::new(Field::new("item", t, true))),
                true,
            ))
        };
        Ok(vec![
            list("group", DataType::Utf8),
            list("stratum", DataType::Utf8),
            list("bin", DataType::Float64),
            list("events", DataType::Int64),
            list("competing", DataType::Int64),
            list("leaving", DataType::Int64),
            Arc::new(Field::new(
                format!("{}[horizon]", args.name),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs<'_>) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(StatisticAccumulator {
            statistic: self.statistic,
            input: self.input,
            records: Vec::new(),
            horizon: None,
        }))
    }
}

#[derive(Debug)]
struct StatisticAccumulator {
    statistic: Statistic,
    input: Input,
    records: Vec<Record>,
    /// The summary's horizon or the quantile's probability, once seen (a
    /// partial state without rows carries none).
    horizon: Option<f64>,
}

fn floats(a: &ArrayRef) -> DfResult<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

fn ints(a: &ArrayRef) -> DfResult<Int64Array> {
    Ok(cast(a, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn texts(a: &ArrayRef) -> DfResult<StringArray> {
    Ok(cast(a, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn text(a: &StringArray, i: usize) -> String {
    if a.is_null(i) {
        String::new()
    } else {
        a.value(i).to_string()
    }
}

impl StatisticAccumulator {
    /// Patient rows: bin each row's time, count its event (or cause).
    fn rows(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Statistic::Histogram | Statistic::Quantile = self.statistic {
            return self.values(values);
        }
        let (Some(time), Some(event), Some(width)) = (values.first(), values.get(1), values.get(2))
        else {
            return exec_err!(
                "{} takes a time, an event and a bin width",
                name(self.statistic)
            );
        };
        let (time, width) = (floats(time)?, floats(width)?);
        let event = ints(event)?;
        let (group, stratum) = match self.statistic {
            Statistic::LogRank => (
                values.get(3).map(texts).transpose()?,
                values.get(4).map(texts).transpose()?,
            ),
            _ => (None, None),
        };
        if self.statistic == Statistic::Summary
            && let Some(h) = values.get(3)
        {
            let h = floats(h)?;
            if !h.is_empty() && h.is_valid(0) {
                self.horizon = Some(h.value(0));
            }
        }
        for i in 0..time.len() {
            if time.is_null(i) || width.is_null(i) {
                continue;
            }
            let w = width.value(i);
            let cause = if event.is_valid(i) { event.value(i) } else { 0 };
            let (events, competing) = match self.statistic {
                Statistic::Incidence => (i64::from(cause == 1), i64::from(cause > 1)),
                _ => (i64::from(cause != 0), 0),
            };
            self.records.push(Record {
                group: group.as_ref().map(|g| text(g, i)).unwrap_or_default(),
                stratum: stratum.as_ref().map(|s| text(s, i)).unwrap_or_default(),
                bin: (time.value(i) / w).ceil() * w,
                events,
                competing,
                leaving: 1,
            });
        }
        Ok(())
    }

    /// Values: `histogram(x, width)` or `quantile(x, p, width)`.
    fn values(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let (x, width) = match values {
            [x, width] => (floats(x)?, floats(width)?),
            [x, p, width] => {
                let p = floats(p)?;
                if !p.is_empty() && p.is_valid(0) {
                    self.horizon = Some(p.value(0));
                }
                (floats(x)?, floats(width)?)
            }
            _ => return exec_err!("{} takes a value and a bin width", name(self.statistic)),
        };
        for i in 0..x.len() {
            if x.is_null(i) || width.is_null(i) {
                continue;
            }
            let w = width.value(i);
            self.records.push(Record {
                group: String::new(),
                stratum: String::new(),
                bin: (x.value(i) / w).ceil() * w,
                events: 0,
                competing: 0,
                leaving: 1,
            });
        }
        Ok(())
    }

    /// Released bins, as the planner passes them.
    fn bins(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let [group, stratum, bin, events, competing, rows, horizon] = values else {
            return exec_err!("a statistic's bins come in seven columns");
        };
        let (group, stratum) = (texts(group)?, texts(stratum)?);
        let (bin, horizon) = (floats(bin)?, floats(horizon)?);
        let (events, competing, rows) = (ints(events)?, ints(competing)?, ints(rows)?);
        for i in 0..bin.len() {
            if horizon.is_valid(i) {
                self.horizon = Some(horizon.value(i));
            }
            if bin.is_null(i) || events.is_null(i) || rows.is_null(i) {
                continue;
            }
            self.records.push(Record {
                group: text(&group, i),
                stratum: text(&stratum, i),
                bin: bin.value(i),
                events: events.value(i),
                competing: if competing.is_valid(i) {
                    competing.value(i)
                } else {
                    0
                },
                leaving: rows.value(i),
            });
        }
        Ok(())
    }
}

fn list_scalar(a: ArrayRef) -> ScalarValue {
    ScalarValue::List(Arc::new(ListArray::new(
        Arc::new(Field::new("item", a.data_type().clone(), true)),
        OffsetBuffer::from_lengths([a.len()]),
        a,
        None,
    )))
}

impl Accumulator for StatisticAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match self.input {
            Input::Rows => self.rows(values),
            Input::Bins => self.bins(values),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let [group, stratum, bin, events, competing, leaving, horizon] = states else {
            return exec_err!("a statistic's state has seven columns");
        };
        let horizon = floats(horizon)?;
        let lists = [group, stratum, bin, events, competing, leaving].map(|a| a.as_list::<i32>());
        for r in 0..lists[0].len() {
            if horizon.is_valid(r) {
                self.horizon = Some(horizon.value(r));
            }
            if lists[0].is_null(r) {
                continue;
            }
            let values: Vec<ArrayRef> = lists.iter().map(|l| l.value(r)).collect();
            self.bins(&[
                Arc::clone(&values[0]),
                Arc::clone(&values[1]),
                Arc::clone(&values[2]),
                Arc::clone(&values[3]),
                Arc::clone(&values[4]),
                Arc::clone(&values[5]),
                Arc::new(Float64Array::from(vec![None; values[0].len()])),
            ])?;
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let r = &self.records;
        let strings = |f: fn(&Record) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(r.iter().map(f)))
        };
        let counts = |f: fn(&Record) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(r.iter().map(f)))
        };
        Ok(vec![
            list_scalar(strings(|x| &x.group)),
            list_scalar(strings(|x| &x.stratum)),
            list_scalar(Arc::new(Float64Array::from_iter_values(
                r.iter().map(|x| x.bin),
            ))),
            list_scalar(counts(|x| x.events)),
            list_scalar(counts(|x| x.competing)),
            list_scalar(counts(|x| x.leaving)),
            ScalarValue::Float64(self.horizon),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.statistic
            .finish(&self.records, self.horizon.unwrap_or(0.0))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.records.capacity() * std::mem::size_of::<Record>()
            + self
                .records
                .iter()
                .map(|r| r.group.capacity() + r.stratum.capacity())
                .sum::<usize>()
    }
}
