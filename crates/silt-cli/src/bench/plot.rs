//! `--plot FILE.svg`: throughput and WAL segments per second over the timed phase, in two
//! panels sharing the time axis, so a degradation (seed 000) shows at a glance.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::Report;
use super::workload::Sample;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 640;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// The SVG text of the plot of `r`.
pub fn render(r: &Report) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "silt bench {} | store latency {} | read ratio {:.2} | {} writes | {} clients",
            r.workload, r.store_latency, r.read_ratio, r.durability, r.threads
        );
        let root = root.titled(&title, ("sans-serif", 20)).map_err(err)?;
        let (top, bottom) = root.split_vertically((HEIGHT - 30) / 2);
        let ops = format!("throughput (ops/s), mean {:.0}", r.ops_per_s);
        panel(&top, &ops, &r.throughput_by_second, BLUE, None)?;
        let wal = format!(
            "WAL segments/s, mean {:.2}, mean segment {:.0} B",
            r.wal.segments_per_s, r.wal.mean_segment_bytes
        );
        panel(
            &bottom,
            &wal,
            &r.wal_segments_by_second,
            RED,
            Some(r.wal.put_rate_bound_per_s),
        )?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[allow(clippy::cast_precision_loss)]
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    per_second: &[u64],
    color: RGBColor,
    bound: Option<f64>,
) -> Result<()> {
    let seconds = per_second.len().max(1) as f64;
    let top = per_second
        .iter()
        .map(|v| *v as f64)
        .chain(bound)
        .fold(1.0_f64, f64::max)
        * 1.4;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..seconds, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_label_formatter(&|v| {
            if top >= 20.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    // One point per second, at the middle of the second it counts.
    let points = per_second
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 + 0.5, *v as f64));
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(2)))
        .map_err(err)?
        .label(caption.split(',').next().unwrap_or(caption).to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    if let Some(b) = bound {
        let grey = RGBColor(110, 110, 110);
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, b), (seconds, b)],
                grey.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("PUT-rate bound {b:.2}/s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A line to draw: its legend label, colour and points (x in seconds).
struct Series {
    label: String,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

/// `soak --plot`: throughput on top; resident memory, the block cache and the memtables below,
/// with the memory budget as a horizontal line and the end of the warm-up as a vertical one.
#[allow(clippy::cast_precision_loss)]
pub fn render_soak(r: &Report) -> Result<String> {
    let Some(s) = &r.soak else {
        return Err(anyhow!("not a soak report"));
    };
    let mb = |b: u64| b as f64 / f64::from(1u32 << 20);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "silt bench soak | store latency {} | read ratio {:.2} | {} writes | {} clients",
            r.store_latency, r.read_ratio, r.durability, r.threads
        );
        let root = root.titled(&title, ("sans-serif", 20)).map_err(err)?;
        let (top, bottom) = root.split_vertically((HEIGHT - 30) / 2);
        let seconds = r.throughput_by_second.len().max(1) as f64;
        let ops = Series {
            label: "throughput (ops/s)".into(),
            color: BLUE,
            width: 2,
            points: r
                .throughput_by_second
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64 + 0.5, *v as f64))
                .collect(),
        };
        lines(
            &top,
            &format!("throughput (ops/s), mean {:.0}", r.ops_per_s),
            seconds,
            &[ops],
            None,
            s.warmup_s,
            SeriesLabelPosition::LowerRight,
        )?;
        let mem = &s.memory_by_second;
        let series = |label: &str, color: RGBColor, width: u32, get: fn(&Sample) -> u64| Series {
            label: label.to_string(),
            color,
            width,
            points: mem.iter().map(|m| (m.t, mb(get(m)))).collect(),
        };
        let memory = [
            series("resident memory", RED, 2, |m| m.rss_bytes),
            series("block cache", RGBColor(0, 140, 70), 1, |m| {
                m.block_cache_bytes
            }),
            series("memtables", RGBColor(150, 90, 0), 1, |m| m.memtable_bytes),
        ];
        lines(
            &bottom,
            &format!(
                "memory (MB): peak RSS {:.1}, growth after warm-up {:.4} MB/s",
                s.rss_peak_mb, s.rss_growth_after_warmup_mb_per_s
            ),
            seconds,
            &memory,
            Some(("memory budget", s.memory_budget_mb)),
            s.warmup_s,
            SeriesLabelPosition::MiddleRight,
        )?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn lines(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    seconds: f64,
    series: &[Series],
    hline: Option<(&str, f64)>,
    vline: f64,
    legend: SeriesLabelPosition,
) -> Result<()> {
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(hline.map(|h| h.1))
        .fold(1.0_f64, f64::max)
        * 1.25;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..seconds, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for s in series {
        let (color, width) = (s.color, s.width);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
    }
    let grey = RGBColor(110, 110, 110);
    if let Some((label, b)) = hline {
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, b), (seconds, b)],
                grey.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{label} {b:.0} MB"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    if vline > 0.0 {
        let light = RGBColor(190, 120, 220);
        chart
            .draw_series(LineSeries::new(
                vec![(vline, 0.0), (vline, top)],
                light.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("end of warm-up ({vline:.0} s)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], light.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(legend)
        .draw()
        .map_err(err)?;
    Ok(())
}
