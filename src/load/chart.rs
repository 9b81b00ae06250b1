//! A small SVG line chart of final latency against the number of streams, for docs/BENCHMARKS.md.

use std::fmt::Write;

use super::LevelReport;

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
    let y_step = (y_max / 6.0).ceil().max(0.5);
    let mut v = 0.0;
    while v <= y_max {
        let _ = writeln!(
            svg,
            "<line x1=\"{x0}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            y(v),
            x(x_max),
            y(v)
        );
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>", x0 - 6.0, y(v) + 4.0);
        v += y_step;
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
    fn draws_one_point_per_level_and_series() {
        let level = |streams: usize, p50: f64| LevelReport {
            streams,
            admitted: streams,
            refused: Default::default(),
            errors: Default::default(),
            final_latency: Spread { p50: Some(p50), p95: Some(p50 * 2.0), max: None },
            first_partial: Spread::default(),
            partials_per_stream: 0.0,
            min_partials_per_2s: None,
            wall_seconds: 0.0,
            server: Default::default(),
            per_stream: Vec::new(),
        };
        let svg = latency_chart("t", &[level(1, 0.5), level(4, 1.0)]);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
