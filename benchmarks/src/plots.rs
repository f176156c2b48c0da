//! SVG plots of a run (plotters, SVG backend, text as SVG text).
//!
//! One helper draws every chart: lines with points, optional log₁₀ axes
//! (values are transformed and the labels printed back in plain units).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::report::{Results, Scale, human, ratios};
use crate::stats::median;
use crate::sweeps::QueryFigures;

/// One line of a chart.
struct Series {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// An axis: its title, whether it is log₁₀, and (log axes) whether only
/// whole decades are labelled (persons: 10k, 100k, 1M).
struct Axis<'a> {
    desc: &'a str,
    log: bool,
    decades: bool,
}

impl<'a> Axis<'a> {
    fn linear(desc: &'a str) -> Self {
        Self {
            desc,
            log: false,
            decades: false,
        }
    }

    fn log(desc: &'a str) -> Self {
        Self {
            desc,
            log: true,
            decades: false,
        }
    }

    fn decades(desc: &'a str) -> Self {
        Self {
            desc,
            log: true,
            decades: true,
        }
    }

    fn map(&self, v: f64) -> f64 {
        if self.log { v.max(1e-9).log10() } else { v }
    }

    fn label(&self, v: f64) -> String {
        if !self.log {
            return if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            };
        }
        // Label whole decades only: the grid between them stays unlabelled.
        let x = if self.decades {
            if (v - v.round()).abs() > 0.02 {
                return String::new();
            }
            10f64.powf(v.round())
        } else {
            10f64.powf(v)
        };
        if x >= 1000.0 {
            human(x.round() as u64)
        } else if x >= 10.0 {
            format!("{x:.0}")
        } else if x >= 1.0 {
            format!("{x:.1}")
        } else {
            format!("{x:.2}")
        }
    }
}

const FED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const CENT: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const DUCK: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);

fn range(values: impl Iterator<Item = f64> + Clone, pad: f64) -> std::ops::Range<f64> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let span = (hi - lo).max(1e-6);
    (lo - span * pad)..(hi + span * pad)
}

fn chart(path: &Path, title: &str, x: Axis<'_>, y: Axis<'_>, series: &[Series]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| BenchError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mapped: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .map(|&(a, b)| (x.map(a), y.map(b)))
                .collect()
        })
        .collect();
    let all = mapped.iter().flatten();
    let xr = range(all.clone().map(|p| p.0), 0.05);
    let mut yr = range(all.map(|p| p.1), 0.1);
    if !y.log {
        yr.start = yr.start.min(0.0);
    }
    // Head room for the legend above the lines.
    yr.end += (yr.end - yr.start) * 0.3;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xr, yr)
        .map_err(|e| fail(&e))?;
    c.configure_mesh()
        .x_desc(x.desc)
        .y_desc(y.desc)
        .x_label_formatter(&|v| x.label(*v))
        .y_label_formatter(&|v| y.label(*v))
        .draw()
        .map_err(|e| fail(&e))?;
    for (s, pts) in series.iter().zip(&mapped) {
        let color = s.color;
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

fn series(label: &str, color: RGBColor, points: Vec<(f64, f64)>) -> Series {
    Series {
        label: label.into(),
        color,
        points,
    }
}

fn total(figures: &[QueryFigures], f: fn(&QueryFigures) -> f64) -> f64 {
    figures.iter().map(f).sum::<f64>() / 1000.0
}

/// Write every plot of `r` into `dir`; returns the files.
pub fn write(dir: &Path, r: &Results) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::Write {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = vec![persons_chart(dir, r)?];
    if let Some(s) = r.main_scale() {
        out.push(queries_chart(dir, s)?);
    }
    if !r.sites.is_empty() {
        out.push(sites_chart(dir, r)?);
    }
    if !r.concurrency.is_empty() {
        out.push(concurrency_chart(dir, r)?);
    }
    Ok(out)
}

/// The whole workload by persons, every configuration.
fn persons_chart(dir: &Path, r: &Results) -> Result<PathBuf> {
    let persons = |f: fn(&QueryFigures) -> f64| -> Vec<(f64, f64)> {
        r.scales
            .iter()
            .map(|s| (s.cohort.persons as f64, total(&s.figures, f)))
            .collect()
    };
    let path = dir.join("persons.svg");
    chart(
        &path,
        "Whole workload (sum of medians) by persons, 3 sites",
        Axis::decades("persons"),
        Axis::log("seconds"),
        &[
            series("federated", FED, persons(QueryFigures::federated)),
            series(
                "centralized DataFusion",
                CENT,
                persons(QueryFigures::centralized),
            ),
            series("DuckDB", DUCK, persons(QueryFigures::duckdb)),
        ],
    )?;
    Ok(path)
}

/// Per query, federated time over each baseline at the main scale.
fn queries_chart(dir: &Path, s: &Scale) -> Result<PathBuf> {
    let path = dir.join("queries.svg");
    let by_query = |g: fn(&QueryFigures) -> f64| -> Vec<(f64, f64)> {
        s.figures
            .iter()
            .enumerate()
            .map(|(i, f)| ((i + 1) as f64, f.federated() / g(f)))
            .collect()
    };
    chart(
        &path,
        &format!(
            "Federated time over baseline per query, {} persons",
            human(s.cohort.persons)
        ),
        Axis::linear("query (order of RESULTS.md)"),
        Axis::linear("ratio"),
        &[
            series(
                "federated / centralized",
                CENT,
                by_query(QueryFigures::centralized),
            ),
            series("federated / DuckDB", DUCK, by_query(QueryFigures::duckdb)),
        ],
    )?;
    Ok(path)
}

/// The median ratio by number of sites.
fn sites_chart(dir: &Path, r: &Results) -> Result<PathBuf> {
    let path = dir.join("sites.svg");
    let points: Vec<(f64, f64)> = r
        .sites
        .iter()
        .map(|p| (p.sites as f64, median(&ratios(&p.figures))))
        .collect();
    chart(
        &path,
        "Median federated/centralized ratio by number of sites",
        Axis::linear("sites"),
        Axis::linear("ratio"),
        &[series("federated / centralized", FED, points)],
    )?;
    Ok(path)
}

/// Throughput by concurrent analysts.
fn concurrency_chart(dir: &Path, r: &Results) -> Result<PathBuf> {
    let path = dir.join("concurrency.svg");
    let points = |i: usize| -> Vec<(f64, f64)> {
        r.concurrency
            .iter()
            .map(|pair| (pair[i].analysts as f64, pair[i].throughput()))
            .collect()
    };
    chart(
        &path,
        "Throughput by concurrent analysts",
        Axis::log("analysts"),
        Axis::linear("queries per second"),
        &[
            series("federated", FED, points(0)),
            series("centralized", CENT, points(1)),
        ],
    )?;
    Ok(path)
}
