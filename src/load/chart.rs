//! A small SVG line chart of final latency against the number of streams, for docs/BENCHMARKS.md.

use std::fmt::Write;

use super::report::LevelReport;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;

/// p50 and p95 final latency of each level; levels with no admitted stream are left out.
pub fn latency_chart(title: &str, levels: &[LevelReport]) -> String {
    let points = |pick: fn(&LevelReport) -> Option<f64>| -> Vec<(f64, f64)> {
        levels.iter().filter_map(|l| Some((l.streams as f64, pick(l)?))).collect()
    };
    let p50 = points(|l| l.final_latency.p50);
    let p95 = points(|l| l.final_latency.p95);
    let x_max = levels.iter().map(|l| l.streams).max().unwrap_or(1).max(1) as f64;
    let y_max = p95.iter().chain(&p50).map(|p| p.1).fold(1.0_f64, f64::max).ceil();
    let x = |v: f64| LEFT + v / x_max * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| HEIGHT - BOTTOM - v / y_max * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"18\" font-size=\"14\">{title}</text>\n"
    );
    axes(&mut svg, x_max, y_max, &x, &y);
    for (name, series, colour) in [("p50", &p50, "#1f77b4"), ("p95", &p95, "#d62728")] {
        let path: Vec<String> = series.iter().map(|(sx, sy)| format!("{:.1},{:.1}", x(*sx), y(*sy))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (sx, sy) in series.iter() {
            let _ = writeln!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>", x(*sx), y(*sy));
        }
        if name == "p95" {
            refused_labels(&mut svg, levels, &x, &y);
        }
        let ly = if name == "p50" { TOP + 10.0 } else { TOP + 28.0 };
        let lx = WIDTH - RIGHT + 16.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            lx + 20.0
        );
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\">final {name}</text>", lx + 26.0, ly + 4.0);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Where some streams were refused, says how many were admitted, above the p95 point.
fn refused_labels(svg: &mut String, levels: &[LevelReport], x: &impl Fn(f64) -> f64, y: &impl Fn(f64) -> f64) {
    for l in levels.iter().filter(|l| l.admitted < l.streams) {
        let Some(p95) = l.final_latency.p95 else { continue };
        let (px, py) = (x(l.streams as f64), y(p95) - 10.0);
        let _ = writeln!(
            svg,
            "<text x=\"{px:.1}\" y=\"{py:.1}\" text-anchor=\"middle\" font-size=\"10\">{} admitted</text>",
            l.admitted
        );
    }
}

/// A tick step of 1, 2 or 5 times a power of ten that gives at most about eight ticks.
fn nice_step(max: f64) -> f64 {
    let raw = max / 8.0;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|step| *step >= raw).unwrap_or(power * 10.0)
}

fn axes(svg: &mut String, x_max: f64, y_max: f64, x: &impl Fn(f64) -> f64, y: &impl Fn(f64) -> f64) {
    let (x0, y0) = (x(0.0), y(0.0));
    let _ = writeln!(svg, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"black\"/>", x(x_max));
    let _ = writeln!(svg, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>", y(y_max));
    let x_step = (x_max / 8.0).ceil().max(1.0);
    let mut v = 0.0;
    while v <= x_max {
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v}</text>", x(v), y0 + 16.0);
        v += x_step;
    }
    let y_step = nice_step(y_max);
    for i in 0..=((y_max / y_step) + 1e-9) as usize {
        let v = i as f64 * y_step;
        let label = format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_owned();
        let (yv, right) = (y(v), x(x_max));
        let _ = writeln!(svg, "<line x1=\"{x0}\" y1=\"{yv:.1}\" x2=\"{right}\" y2=\"{yv:.1}\" stroke=\"#ddd\"/>");
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>", x0 - 6.0, yv + 4.0);
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">concurrent streams</text>",
        x(x_max / 2.0),
        HEIGHT - 8.0
    );
    let _ = writeln!(
        svg,
        "<text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">end of last word to final (s)</text>",
        y(y_max / 2.0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::Spread;

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(nice_step(1.0), 0.2);
        assert_eq!(nice_step(4.0), 0.5);
        assert_eq!(nice_step(31.2), 5.0);
    }

    #[test]
    fn draws_one_point_per_level_and_series() {
        let level = |streams: usize, p50: f64| LevelReport {
            streams,
            admitted: streams,
            refused: Default::default(),
            errors: Default::default(),
            final_latency: Spread { p50: Some(p50), p95: Some(p50 * 2.0), max: None },
            word_latency: Spread::default(),
            first_partial: Spread::default(),
            partials_per_stream: 0.0,
            min_partials_per_2s: None,
            wall_seconds: 0.0,
            server: Default::default(),
            per_stream: Vec::new(),
        };
        let mut refused = level(8, 1.0);
        refused.admitted = 6;
        let svg = latency_chart("t", &[level(1, 0.5), level(4, 1.0), refused]);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("6 admitted"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
