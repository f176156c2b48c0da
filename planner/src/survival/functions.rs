//! The SQL functions of a curve: `kaplan_meier`, which the analyst writes,
//! and `ihdsi_km_curve`, which finishes it at the coordinator from
//! released bins.
//!
//! Both return the same list of bins, so the finished curve takes the
//! place of the analyst's aggregate unchanged. `kaplan_meier` also runs on
//! patient rows: that is how a pooled DataFusion session (the test
//! suite's oracle) computes the same curve, and it is never sent to a
//! site: the planner rewrites it into a release first
//! ([`super::expand`]).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use ihdsi_statistics::{Bin, Stratum, kaplan_meier};

/// The analyst's aggregate.
pub const KAPLAN_MEIER: &str = "kaplan_meier";
/// The coordinator's finishing aggregate over released bins.
pub const CURVE_FROM_BINS: &str = "ihdsi_km_curve";

/// The fields of one point of a curve, as a notebook plots them.
fn point_fields() -> Fields {
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    Fields::from(vec![
        f("time", DataType::Float64),
        f("at_risk", DataType::Int64),
        f("events", DataType::Int64),
        f("censored", DataType::Int64),
        f("survival", DataType::Float64),
        f("std_error", DataType::Float64),
        f("lower_95", DataType::Float64),
        f("upper_95", DataType::Float64),
    ])
}

/// A curve's type: a list of points.
pub fn curve_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(point_fields()),
        true,
    )))
}

/// Register `kaplan_meier` in `ctx`, for planning the analyst's SQL (and
/// for pooled sessions, which compute it on rows).
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(CurveUdf::analyst()));
}

static FROM_BINS: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(CurveUdf::from_bins())));

/// `ihdsi_km_curve(bin, events, rows)` over released bins.
pub fn curve_from_bins(args: Vec<Expr>) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        Arc::clone(&FROM_BINS),
        args,
        false,
        None,
        vec![],
        None,
    ))
}

/// Which inputs a curve aggregate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Input {
    /// Patient rows: time, event, width.
    Rows,
    /// Released bins: bin end, events, rows.
    Bins,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurveUdf {
    input: Input,
    signature: Signature,
}

impl CurveUdf {
    fn analyst() -> Self {
        Self {
            input: Input::Rows,
            signature: Signature::new(TypeSignature::Any(3), Volatility::Immutable),
        }
    }

    fn from_bins() -> Self {
        Self {
            input: Input::Bins,
            signature: Signature::exact(
                vec![DataType::Float64, DataType::Int64, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl AggregateUDFImpl for CurveUdf {
    fn name(&self) -> &str {
        match self.input {
            Input::Rows => KAPLAN_MEIER,
            Input::Bins => CURVE_FROM_BINS,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(curve_type())
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
            list("bins", DataType::Float64),
            list("events", DataType::Int64),
            list("leaving", DataType::Int64),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs<'_>) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(CurveAccumulator {
            input: self.input,
            bins: Vec::new(),
        }))
    }
}

/// The bins seen so far: (bin end, events, patients leaving).
#[derive(Debug)]
struct CurveAccumulator {
    input: Input,
    bins: Vec<(f64, i64, i64)>,
}

fn floats(a: &ArrayRef) -> DfResult<Float64Array> {
    Ok(cast(a, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
}

fn ints(a: &ArrayRef) -> DfResult<Int64Array> {
    Ok(cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
}

impl CurveAccumulator {
    fn rows(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let [time, event, width] = values else {
            return exec_err!("kaplan_meier takes a time, an event and a bin width");
        };
        let (time, width) = (floats(time)?, floats(width)?);
        let event: BooleanArray = cast(event, &DataType::Boolean)?.as_boolean().clone();
        for i in 0..time.len() {
            if time.is_null(i) || width.is_null(i) {
                continue;
            }
            let w = width.value(i);
            let bin = (time.value(i) / w).ceil() * w;
            let died = event.is_valid(i) && event.value(i);
            self.bins.push((bin, i64::from(died), 1));
        }
        Ok(())
    }

    fn released(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let [bin, events, rows] = values else {
            return exec_err!("ihdsi_km_curve takes a bin, its events and its rows");
        };
        let (bin, events, rows) = (floats(bin)?, ints(events)?, ints(rows)?);
        for i in 0..bin.len() {
            if bin.is_valid(i) && events.is_valid(i) && rows.is_valid(i) {
                self.bins.push((bin.value(i), events.value(i), rows.value(i)));
            }
        }
        Ok(())
    }
}

impl Accumulator for CurveAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match self.input {
            Input::Rows => self.rows(values),
            Input::Bins => self.released(values),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let [bins, events, leaving] = states else {
            return exec_err!("a curve's state has three lists");
        };
        let (bins, events, leaving) = (bins.as_list::<i32>(), events.as_list::<i32>(), leaving.as_list::<i32>());
        for r in 0..bins.len() {
            if bins.is_null(r) {
                continue;
            }
            let (b, e, l) = (bins.value(r), events.value(r), leaving.value(r));
            let (b, e, l) = (b.as_primitive::<Float64Type>(), e.as_primitive::<Int64Type>(), l.as_primitive::<Int64Type>());
            for i in 0..b.len() {
                self.bins.push((b.value(i), e.value(i), l.value(i)));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let list = |a: ArrayRef| ScalarValue::List(Arc::new(ListArray::new(
            Arc::new(Field::new("item", a.data_type().clone(), true)),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([a.len()]),
            a,
            None,
        )));
        Ok(vec![
            list(Arc::new(Float64Array::from_iter_values(self.bins.iter().map(|b| b.0)))),
            list(Arc::new(Int64Array::from_iter_values(self.bins.iter().map(|b| b.1)))),
            list(Arc::new(Int64Array::from_iter_values(self.bins.iter().map(|b| b.2)))),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        curve_value(&self.bins)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bins.capacity() * std::mem::size_of::<(f64, i64, i64)>()
    }
}

/// The curve of `bins` (in any order, a bin possibly more than once) as a
/// list of points.
fn curve_value(bins: &[(f64, i64, i64)]) -> DfResult<ScalarValue> {
    let mut sorted = bins.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut grid: Vec<Bin> = Vec::new();
    for (time, events, leaving) in sorted {
        let (events, leaving) = (u64::try_from(events).unwrap_or(0), u64::try_from(leaving).unwrap_or(0));
        let censored = leaving.saturating_sub(events);
        match grid.last_mut() {
            Some(last) if last.time == time => {
                last.events += events;
                last.censored += censored;
            }
            _ => grid.push(Bin { time, events, censored }),
        }
    }
    let stratum = Stratum::new(grid).map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    let curve = kaplan_meier::curve(&stratum, 0.95)
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    let p = &curve.points;
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from_iter_values(p.iter().map(|x| x.time))),
        Arc::new(Int64Array::from_iter_values(p.iter().map(|x| signed(x.at_risk)))),
        Arc::new(Int64Array::from_iter_values(p.iter().map(|x| signed(x.events)))),
        Arc::new(Int64Array::from_iter_values(p.iter().map(|x| signed(x.censored)))),
        Arc::new(Float64Array::from_iter_values(p.iter().map(|x| x.survival))),
        Arc::new(Float64Array::from_iter_values(p.iter().map(|x| x.std_error))),
        Arc::new(Float64Array::from_iter_values(p.iter().map(|x| x.lower))),
        Arc::new(Float64Array::from_iter_values(p.iter().map(|x| x.upper))),
    ];
    let points = StructArray::try_new(point_fields(), columns, None)?;
    let n = points.len();
    Ok(ScalarValue::List(Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(point_fields()), true)),
        datafusion::arrow::buffer::OffsetBuffer::from_lengths([n]),
        Arc::new(points),
        None,
    ))))
}
