//! SVG charts: throughput against the number of concurrent writers, and the latency
//! distribution of one-record durable appends.

use std::{io, path::Path};

use plotters::prelude::*;

use crate::{
    limits::Limits,
    measure::{Row, Summary},
    subject::io_err,
};

/// One line of a chart.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// Draws both charts into `dir`; returns the file names written.
pub(crate) fn draw(
    dir: &Path,
    rows: &[Row],
    limits: &Limits,
    writers: &[usize],
    writers_workload: &str,
    latency_workload: &str,
    latency_case: &str,
) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();

    let mut lines = lines_by_subject(
        rows,
        writers_workload,
        |case| {
            let n: usize = case.split_whitespace().next()?.parse().ok()?;
            let x = writers.iter().position(|&w| w == n)?;
            Some(x as f64)
        },
        |s| Some(s.records_per_sec()),
    );
    lines.push(Line {
        name: "raw limit (perfect group commit)".to_owned(),
        points: writers
            .iter()
            .enumerate()
            .filter_map(|(x, &w)| Some((x as f64, limits.fsync_rate(w * 128)? * w as f64)))
            .collect(),
        dashed: true,
    });
    let labels: Vec<String> = writers.iter().map(ToString::to_string).collect();
    let name = "throughput-vs-writers.svg";
    plot(
        &dir.join(name),
        "Durable 128 B appends: records/s vs concurrent writers",
        "writers",
        "records/s",
        &lines,
        &|x| labels.get(x.round() as usize).cloned().unwrap_or_default(),
        writers.len().saturating_sub(1).max(1) as f64,
    )?;
    written.push(name.to_owned());

    // Latency distribution: x is "nines" (1 = p90, 2 = p99, 3 = p999, ...), y in µs.
    let nines = |q: f64| if q >= 1.0 { 5.0 } else { -(1.0 - q).log10() };
    let mut lines: Vec<Line> = rows
        .iter()
        .filter(|r| r.workload == latency_workload && r.case == latency_case)
        .filter_map(|r| {
            let s = r.summary()?;
            Some(Line {
                name: r.subject.to_owned(),
                points: quantile_points(s, nines),
                dashed: false,
            })
        })
        .collect();
    let raw = [
        ("raw append+fdatasync", &limits.fsync),
        (
            "raw overwrite+fdatasync (preallocated)",
            &limits.fsync_preallocated,
        ),
    ];
    for (name, runs) in raw {
        if let Some((_, run)) = runs.iter().find(|(size, _)| *size == 128) {
            lines.push(Line {
                name: name.to_owned(),
                points: quantile_points(run, nines),
                dashed: true,
            });
        }
    }
    let name = "latency-distribution.svg";
    plot(
        &dir.join(name),
        "Durable 128 B append latency by percentile (µs, one writer)",
        "percentile",
        "latency (µs)",
        &lines,
        &|x| match x.round() as i64 {
            0 => "p0".to_owned(),
            1 => "p90".to_owned(),
            2 => "p99".to_owned(),
            3 => "p99.9".to_owned(),
            4 => "p99.99".to_owned(),
            _ => "max".to_owned(),
        },
        5.0,
    )?;
    written.push(name.to_owned());
    Ok(written)
}

fn quantile_points(s: &Summary, nines: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    s.quantiles
        .iter()
        .map(|&(q, ns)| (nines(q), ns as f64 / 1e3))
        .collect()
}

fn lines_by_subject(
    rows: &[Row],
    workload: &str,
    x_of: impl Fn(&str) -> Option<f64>,
    y_of: impl Fn(&Summary) -> Option<f64>,
) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for r in rows.iter().filter(|r| r.workload == workload) {
        let (Some(s), Some(x)) = (r.summary(), x_of(&r.case)) else {
            continue;
        };
        let Some(y) = y_of(s) else { continue };
        let name = if r.counts_for_best {
            r.subject.to_owned()
        } else {
            format!("{} (no fsync)", r.subject)
        };
        match lines.iter_mut().find(|l| l.name == name) {
            Some(line) => line.points.push((x, y)),
            None => lines.push(Line {
                name,
                points: vec![(x, y)],
                dashed: false,
            }),
        }
    }
    lines
}

/// A log-y line chart with x from 0 to `x_max`.
fn plot(
    path: &Path,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    x_label: &dyn Fn(&f64) -> String,
    x_max: f64,
) -> io::Result<()> {
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let y_min = ys.clone().fold(f64::INFINITY, f64::min).max(1e-3);
    let y_max = ys.fold(0.0f64, f64::max).max(y_min * 10.0);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(io_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.1f64..x_max + 0.1, (y_min / 2.0..y_max * 2.0).log_scale())
        .map_err(io_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(x_max as usize + 1)
        .x_label_formatter(x_label)
        .draw()
        .map_err(io_err)?;
    for (i, line) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let style = color.stroke_width(if line.dashed { 1 } else { 2 });
        let mut points = line.points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(io_err)?
            .label(line.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(io_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(io_err)?;
    root.present().map_err(io_err)
}
