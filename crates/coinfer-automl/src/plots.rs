//! SVG plots of a search report and of a sweep (plotters, SVG backend).

use std::path::Path;

use plotters::prelude::*;

use crate::AutomlError;
use crate::race::RaceReport;
use crate::report::{SearchReport, pareto_front};
use crate::sweep::{SweepPoint, SweepReport};

type PlotResult = Result<(), AutomlError>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// A drawing error, naming the file being drawn.
fn failed(path: &Path) -> impl FnOnce(Box<dyn std::error::Error>) -> AutomlError {
    let path = path.to_path_buf();
    move |e| AutomlError::Plot {
        path,
        reason: e.to_string(),
    }
}

/// Draws the search's plots into `out`: `reward.svg`, `scatter.svg`, `rate-accuracy.svg`,
/// `breakdown.svg`.
pub fn draw_search(report: &SearchReport, out: &Path) -> PlotResult {
    let draw = |name: &str, plot: fn(&SearchReport, &Path) -> Drawn| {
        let path = out.join(name);
        plot(report, &path).map_err(failed(&path))
    };
    draw("reward.svg", draw_rewards)?;
    draw("scatter.svg", draw_scatter)?;
    draw("rate-accuracy.svg", draw_rate_accuracy)?;
    draw("breakdown.svg", draw_breakdown)
}

/// Draws the sweep's three plots into `out`: `regime.svg`, `latency-vs-rate.svg`,
/// `speedup.svg`.
pub fn draw_sweep(report: &SweepReport, out: &Path) -> PlotResult {
    let draw = |name: &str, plot: fn(&SweepReport, &Path) -> Drawn| {
        let path = out.join(name);
        plot(report, &path).map_err(failed(&path))
    };
    draw("regime.svg", draw_regime_map)?;
    draw("latency-vs-rate.svg", draw_latency_vs_rate)?;
    draw("speedup.svg", draw_speedup_vs_rate)
}

/// Draws the race's plot into `out`: `race.svg`, the gap of each method's best plan to the
/// reference against the budget (median over seeds, bars from the best to the worst seed).
pub fn draw_race(report: &RaceReport, out: &Path) -> PlotResult {
    let path = out.join("race.svg");
    draw_race_gaps(report, &path).map_err(failed(&path))
}

fn draw_race_gaps(report: &RaceReport, path: &Path) -> Drawn {
    if report.summary.is_empty() {
        return Ok(());
    }
    let floor = 1e-4; // a gap of 0 is drawn at 0.01 %
    let gap = |g: f64| (100.0 * g).max(100.0 * floor);
    let hi = report
        .summary
        .iter()
        .map(|s| gap(s.gap.max))
        .fold(1.0f64, f64::max)
        * 1.5;
    let budgets: Vec<f64> = report.config.budgets.iter().map(|&b| b as f64).collect();
    let (lo_b, hi_b) = (budgets[0] / 1.4, budgets[budgets.len() - 1] * 1.4);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: gap to the best known plan ({} plans) vs budget, {} seeds",
                report.model,
                report.reference.evaluations,
                report.seeds.len()
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((lo_b..hi_b).log_scale(), ((100.0 * floor)..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("distinct plans evaluated (budget)")
        .y_desc("gap to reference reward (%)")
        .draw()?;
    let colours = [RED, BLUE, GREEN, MAGENTA, BLACK];
    let methods: Vec<&str> = {
        let mut m: Vec<&str> = report.summary.iter().map(|s| s.method.as_str()).collect();
        m.dedup();
        m
    };
    for (i, method) in methods.iter().enumerate() {
        let colour = colours[i % colours.len()];
        // Methods side by side around each budget, so their bars do not overlap.
        let shift = 1.0 + 0.04 * (i as f64 - (methods.len() as f64 - 1.0) / 2.0);
        let rows: Vec<_> = report
            .summary
            .iter()
            .filter(|s| s.method == *method)
            .collect();
        chart
            .draw_series(LineSeries::new(
                rows.iter()
                    .map(|s| (s.budget as f64 * shift, gap(s.gap.median))),
                colour.stroke_width(2),
            ))?
            .label(*method)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(rows.iter().map(|s| {
            let x = s.budget as f64 * shift;
            PathElement::new(
                vec![(x, gap(s.gap.min)), (x, gap(s.gap.max))],
                colour.stroke_width(1),
            )
        }))?;
        chart.draw_series(rows.iter().map(|s| {
            Circle::new(
                (s.budget as f64 * shift, gap(s.gap.median)),
                4,
                colour.filled(),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Reward of every episode and the running best.
fn draw_rewards(report: &SearchReport, path: &Path) -> Drawn {
    let rewards: Vec<f32> = report.episodes.iter().map(|e| e.reward).collect();
    if rewards.is_empty() {
        return Ok(());
    }
    let (lo, hi) = rewards
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("DDPG search: reward per episode", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f32..rewards.len() as f32, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("episode")
        .y_desc("reward")
        .draw()?;
    chart
        .draw_series(
            rewards
                .iter()
                .enumerate()
                .map(|(i, &r)| Circle::new((i as f32, r), 2, BLUE.mix(0.5).filled())),
        )?
        .label("episode reward")
        .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
    let mut best = f32::NEG_INFINITY;
    let running: Vec<(f32, f32)> = rewards
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            best = best.max(r);
            (i as f32, best)
        })
        .collect();
    chart
        .draw_series(LineSeries::new(running, RED.stroke_width(2)))?
        .label("best so far")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Accuracy against latency of every evaluated plan, the Pareto front, baselines and the
/// chosen plan.
fn draw_scatter(report: &SearchReport, path: &Path) -> Drawn {
    let mut points: Vec<(f64, f32)> = report
        .evaluated
        .iter()
        .map(|e| (e.latency.total * 1e3, 100.0 * e.accuracy))
        .collect();
    points.extend(
        report
            .baselines
            .iter()
            .map(|b| (b.best.latency.total * 1e3, 100.0 * b.best.accuracy)),
    );
    if points.is_empty() {
        return Ok(());
    }
    let (x_lo, x_hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Evaluated plans: accuracy vs predicted latency",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x_lo * 0.9)..(x_hi * 1.05).max(x_lo * 0.9 + 1e-3),
            0f32..100f32,
        )?;
    chart
        .configure_mesh()
        .x_desc("predicted end-to-end latency (ms)")
        .y_desc("validation accuracy (%)")
        .draw()?;
    chart
        .draw_series(report.evaluated.iter().map(|e| {
            Circle::new(
                (e.latency.total * 1e3, 100.0 * e.accuracy),
                2,
                BLUE.mix(0.35).filled(),
            )
        }))?
        .label("evaluated plan")
        .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
    let front: Vec<(f64, f32)> = pareto_front(&report.evaluated)
        .iter()
        .map(|e| (e.latency.total * 1e3, 100.0 * e.accuracy))
        .collect();
    chart
        .draw_series(LineSeries::new(front, BLACK.stroke_width(2)))?
        .label("Pareto front")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    for (i, b) in report.baselines.iter().enumerate() {
        let colour = Palette99::pick(i + 2).to_rgba();
        let at = (b.best.latency.total * 1e3, 100.0 * b.best.accuracy);
        chart
            .draw_series(std::iter::once(TriangleMarker::new(at, 7, colour.filled())))?
            .label(b.name.clone())
            .legend(move |(x, y)| TriangleMarker::new((x, y), 5, colour.filled()));
    }
    let plan = &report.plan;
    chart
        .draw_series(std::iter::once(Cross::new(
            (plan.predicted.total * 1e3, 100.0 * plan.search_accuracy),
            9,
            RED.stroke_width(3),
        )))?
        .label("chosen plan")
        .legend(|(x, y)| Cross::new((x, y), 5, RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Stacked latency breakdown of the chosen plan and the baselines.
fn draw_breakdown(report: &SearchReport, path: &Path) -> Drawn {
    let mut rows = vec![("chosen plan".to_string(), report.plan.predicted)];
    rows.extend(
        report
            .baselines
            .iter()
            .map(|b| (b.name.clone(), b.best.latency)),
    );
    // Room on the right for the legend.
    let max = rows.iter().map(|(_, b)| b.total).fold(0.0, f64::max) * 1e3 * 1.4;
    let n = rows.len() as u32;
    let root = SVGBackend::new(path, (900, 120 + 60 * n)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Predicted latency breakdown (ms)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(140)
        .build_cartesian_2d(0f64..max.max(1e-3), (0u32..n).into_segmented())?;
    let names: Vec<String> = rows.iter().map(|(n, _)| n.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("milliseconds")
        .draw()?;
    let parts = ["device", "encode", "transmit", "RTT", "decode", "edge"];
    for (k, part) in parts.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        let bars: Vec<Rectangle<(f64, SegmentValue<u32>)>> = rows
            .iter()
            .enumerate()
            .map(|(i, (_, b))| {
                let terms = [b.device, b.encode, b.transmit, b.rtt, b.decode, b.edge];
                let start: f64 = terms[..k].iter().sum::<f64>() * 1e3;
                let end = start + terms[k] * 1e3;
                let mut bar = Rectangle::new(
                    [
                        (start, SegmentValue::Exact(i as u32)),
                        (end, SegmentValue::Exact(i as u32 + 1)),
                    ],
                    colour.filled(),
                );
                bar.set_margin(8, 8, 0, 0);
                bar
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(*part)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Rate–accuracy (SC2-style): payload bits per sample (log scale) against validation accuracy
/// of every codec at every split point, one colour per codec family — image files (PNG, JPEG,
/// WebP) as triangles — the Pareto front as a line, fine-tuned re-ranked plans hollow.
fn draw_rate_accuracy(report: &SearchReport, path: &Path) -> Drawn {
    let points = &report.rate_accuracy;
    if points.is_empty() {
        return Ok(());
    }
    let bits = |p: &crate::rate::RatePoint| p.bits_per_sample.max(1) as f64;
    let (lo, hi) = points.iter().fold((f64::INFINITY, 0f64), |(lo, hi), p| {
        (lo.min(bits(p)), hi.max(bits(p)))
    });
    let y_lo = points
        .iter()
        .map(|p| 100.0 * p.accuracy)
        .fold(100f32, f32::min);
    let root = SVGBackend::new(path, (960, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Rate–accuracy: every codec at every split point (unpruned)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            ((lo * 0.8)..(hi * 1.25)).log_scale(),
            (y_lo - 2.0).max(0.0)..100f32,
        )?;
    chart
        .configure_mesh()
        .x_desc("payload bits per sample (log scale)")
        .y_desc("validation accuracy (%)")
        .draw()?;
    let families = [
        ("float32", RGBColor(120, 120, 120)),
        ("quantizer", BLUE),
        ("quantizer+rANS", CYAN),
        ("autoencoder", GREEN),
        ("spatial autoencoder", MAGENTA),
        ("image", RED),
    ];
    for (family, colour) in families {
        let of = |tuned: bool| {
            points
                .iter()
                .filter(move |p| p.family == family && p.fine_tuned == tuned)
                .map(|p| (bits(p), 100.0 * p.accuracy))
        };
        if of(false).next().is_none() && of(true).next().is_none() {
            continue;
        }
        let style = colour.filled();
        if family == "image" {
            chart
                .draw_series(of(false).map(|xy| TriangleMarker::new(xy, 6, style)))?
                .label(family)
                .legend(move |(x, y)| TriangleMarker::new((x, y), 5, style));
        } else {
            chart
                .draw_series(of(false).map(|xy| Circle::new(xy, 4, style)))?
                .label(family)
                .legend(move |(x, y)| Circle::new((x, y), 4, style));
        }
        chart.draw_series(of(true).map(|xy| Circle::new(xy, 6, colour.stroke_width(2))))?;
    }
    let mut front: Vec<(f64, f32)> = points
        .iter()
        .filter(|p| p.pareto && !p.fine_tuned)
        .map(|p| (bits(p), 100.0 * p.accuracy))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart
        .draw_series(LineSeries::new(front, BLACK.stroke_width(1)))?
        .label("Pareto front")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The sweep's panels: one row per RTT, one column per device speed.
fn sweep_panels(report: &SweepReport) -> (Vec<f64>, Vec<f64>) {
    (
        report.grid.rtts_s.clone(),
        report.grid.device_flops_per_s.clone(),
    )
}

fn points_at(report: &SweepReport, rtt: f64, flops: f64) -> Vec<&SweepPoint> {
    let mut points: Vec<&SweepPoint> = report
        .points
        .iter()
        .filter(|p| p.rtt_s == rtt && p.device_flops_per_s == flops)
        .collect();
    points.sort_by(|a, b| a.rate_bps.total_cmp(&b.rate_bps));
    points
}

fn rate_range(report: &SweepReport) -> std::ops::Range<f64> {
    let (lo, hi) = report
        .grid
        .rates_bps
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    (lo / 1.5)..(hi * 1.5)
}

/// Which kind of plan the search chose at every (rate, device speed), one panel per RTT.
fn draw_regime_map(report: &SweepReport, path: &Path) -> Drawn {
    let (rtts, devices) = sweep_panels(report);
    if report.points.is_empty() {
        return Ok(());
    }
    let mut kinds: Vec<String> = report
        .points
        .iter()
        .map(|p| p.searched.kind.clone())
        .collect();
    kinds.sort();
    kinds.dedup();
    let root = SVGBackend::new(path, (520 * rtts.len() as u32, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = devices
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    for (panel, &rtt) in root.split_evenly((1, rtts.len())).iter().zip(&rtts) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("Chosen plan, RTT {:.0} ms", rtt * 1e3),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(
                rate_range(report).log_scale(),
                // A decade of headroom above the fastest device keeps the legend off the cells.
                ((lo / 2.0)..(hi * 20.0)).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("link rate (bit/s, log)")
            .y_desc("device (FLOP/s, log)")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()?;
        for (k, kind) in kinds.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let cells: Vec<(f64, f64)> = report
                .points
                .iter()
                .filter(|p| p.rtt_s == rtt && &p.searched.kind == kind)
                .map(|p| (p.rate_bps, p.device_flops_per_s))
                .collect();
            chart
                .draw_series(cells.iter().map(|&at| {
                    Rectangle::new(
                        [(at.0 / 1.25, at.1 / 1.3), (at.0 * 1.25, at.1 * 1.3)],
                        colour.filled(),
                    )
                }))?
                .label(kind.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// One line per method through a sweep's rates, one panel per (RTT, device speed).
fn per_rate_panels(
    report: &SweepReport,
    path: &Path,
    title: &str,
    y_desc: &str,
    value: impl Fn(&SweepPoint, Option<&str>) -> Option<f64>,
    with_searched: bool,
) -> Drawn {
    let (rtts, devices) = sweep_panels(report);
    if report.points.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = report.points[0]
        .baselines
        .iter()
        .map(|b| b.name.clone())
        .collect();
    let mut series: Vec<Option<String>> = names.iter().cloned().map(Some).collect();
    if with_searched {
        series.insert(0, None);
    }
    let values: Vec<f64> = report
        .points
        .iter()
        .flat_map(|p| series.iter().filter_map(|s| value(p, s.as_deref())))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return Ok(());
    }
    let root = SVGBackend::new(
        path,
        (430 * devices.len() as u32, 380 * rtts.len() as u32 + 40),
    )
    .into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let panels = root.split_evenly((rtts.len(), devices.len()));
    for (i, panel) in panels.iter().enumerate() {
        let (rtt, flops) = (rtts[i / devices.len()], devices[i % devices.len()]);
        let points = points_at(report, rtt, flops);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("RTT {:.0} ms, device {:.2} GFLOP/s", rtt * 1e3, flops / 1e9),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(
                rate_range(report).log_scale(),
                ((lo / 1.3)..(hi * 1.3)).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("link rate (bit/s)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()?;
        for (k, name) in series.iter().enumerate() {
            let line: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|p| value(p, name.as_deref()).map(|v| (p.rate_bps, v)))
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .collect();
            let (colour, width) = match name {
                None => (BLACK.to_rgba(), 3),
                Some(_) => (Palette99::pick(k).to_rgba(), 1),
            };
            let label = name.clone().unwrap_or_else(|| "searched".into());
            let drawn = chart.draw_series(LineSeries::new(line, colour.stroke_width(width)))?;
            // One legend, in the first panel, keeps the small panels readable.
            if i == 0 {
                drawn.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(width))
                });
            }
        }
        if i == 0 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 11))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// Predicted latency against link rate for the searched plan and every baseline.
fn draw_latency_vs_rate(report: &SweepReport, path: &Path) -> Drawn {
    per_rate_panels(
        report,
        path,
        "Predicted end-to-end latency vs link rate",
        "latency (ms, log)",
        |p, name| match name {
            None => Some(p.searched.latency_s * 1e3),
            Some(n) => p
                .baselines
                .iter()
                .find(|b| b.name == n)
                .map(|b| b.latency_s * 1e3),
        },
        true,
    )
}

/// Speed-up of the searched plan over every baseline against link rate.
fn draw_speedup_vs_rate(report: &SweepReport, path: &Path) -> Drawn {
    per_rate_panels(
        report,
        path,
        "Speed-up of the searched plan over each baseline (>1: the search is faster)",
        "speed-up (×, log)",
        |p, name| name.and_then(|n| p.speedup_over(n)),
        false,
    )
}
