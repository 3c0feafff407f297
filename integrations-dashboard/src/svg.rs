//! The charts: small server-rendered SVG, written by hand.
//!
//! Why by hand: a chart here is a few dozen elements (axes, a path per series, one marker per
//! point), and the charting crates (`plotters`, `charming`) either render whole images through a
//! drawing backend or emit JavaScript for a browser library. Neither gives each point the
//! `data-t`/`data-v` attributes that let a test (or a curious operator) read the exact figure
//! behind a mark, and both would add far more code than this module to a crate meant to be
//! mounted in any service.
//!
//! Conventions: each series is a `<g data-series="…">`; every data mark in it (a `circle` or a
//! `rect`) carries `data-t` (unix milliseconds, the end of its interval) and `data-v` (the value
//! as Rust prints it, shortest round-trip). Nothing else is on a mark, to keep an hour of samples
//! small (a refresh re-sends it). A missing value (`None`: `NaN` from the registry, an interval
//! without calls, an outbox that could not be read) is a gap in the line and has no mark; it is
//! never drawn as 0. A count of 0 has no bar.

use std::fmt::Write as _;

use crate::page::escape;

const W: f64 = 520.0;
const H: f64 = 150.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 20.0;

/// The time axis shared by every chart of a page: `[from_ms, to_ms]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
}

impl Axis {
    fn x(self, t: i64) -> f64 {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        let f = ((t - self.from_ms) as f64 / span).clamp(0.0, 1.0);
        LEFT + f * (W - LEFT - RIGHT)
    }
}

/// One line of a line chart.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    pub(crate) series: &'a str,
    /// CSS class (`p50`, `p99`, `pending`, …), which sets the colour.
    pub(crate) class: &'a str,
    pub(crate) points: Vec<(i64, Option<f64>)>,
}

/// The smallest of 1, 2, 5 × 10^k at or above `v` (1 for nothing to show).
fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mut step = 10f64.powf(v.log10().floor());
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= v {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

fn y(v: f64, max: f64) -> f64 {
    let plot = H - TOP - BOTTOM;
    TOP + plot - (v / max).clamp(0.0, 1.0) * plot
}

/// `HH:MM:SS` (UTC) of unix milliseconds.
pub(crate) fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

fn label(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn open(out: &mut String, id: &str, title: &str, unit: &str, axis: Axis, max: f64) {
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" data-chart=\"{id}\" viewBox=\"0 0 {W} {H}\" \
         width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{title}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text class=\"title\" x=\"{LEFT}\" y=\"14\">{title}</text>",
        id = escape(id),
        title = escape(title),
    );
    let bottom = H - BOTTOM;
    for v in [0.0, max / 2.0, max] {
        let yy = y(v, max);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"tick\" x=\"{lx}\" y=\"{ty:.1}\" text-anchor=\"end\">{l}{u}</text>",
            x2 = W - RIGHT,
            lx = LEFT - 4.0,
            ty = yy + 4.0,
            l = label(v),
            u = if v == max { unit } else { "" },
        );
    }
    let _ = write!(
        out,
        "<text class=\"tick\" x=\"{LEFT}\" y=\"{ty}\">{from}</text>\
         <text class=\"tick\" x=\"{x2}\" y=\"{ty}\" text-anchor=\"end\">{to} UTC</text>",
        ty = bottom + 15.0,
        from = clock(axis.from_ms),
        x2 = W - RIGHT,
        to = clock(axis.to_ms),
    );
}

fn legend(out: &mut String, entries: &[(&str, &str)]) {
    let mut x = W - RIGHT;
    for (series, class) in entries.iter().rev() {
        let _ = write!(
            out,
            "<text class=\"legend {class}\" x=\"{x:.1}\" y=\"14\" text-anchor=\"end\">■ {s}</text>",
            class = escape(class),
            s = escape(series),
        );
        x -= 10.0 + 6.5 * (series.chars().count() + 2) as f64;
    }
}

fn no_data(out: &mut String, empty: bool) {
    if empty {
        let _ = write!(
            out,
            "<text class=\"nodata\" x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">no data yet</text>",
            x = (LEFT + W - RIGHT) / 2.0,
            y = H / 2.0,
        );
    }
}

/// A line chart of `lines` over `axis`, with a mark per present point and gaps for `None`.
pub(crate) fn line_chart(
    out: &mut String,
    id: &str,
    title: &str,
    unit: &str,
    axis: Axis,
    lines: &[Line<'_>],
) {
    let values = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1));
    let max = nice_max(values.clone().fold(0.0, f64::max));
    open(out, id, title, unit, axis, max);
    let entries: Vec<(&str, &str)> = lines.iter().map(|l| (l.series, l.class)).collect();
    legend(out, &entries);
    for l in lines {
        let mut d = String::new();
        let mut pen_down = false;
        for (t, v) in &l.points {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1} ",
                        if pen_down { "L" } else { "M" },
                        axis.x(*t),
                        y(*v, max)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            out,
            "<g class=\"{}\" data-series=\"{}\">",
            escape(l.class),
            escape(l.series)
        );
        if !d.is_empty() {
            let _ = write!(out, "<path class=\"line\" d=\"{}\"/>", d.trim_end());
        }
        for (t, v) in &l.points {
            if let Some(v) = v {
                let _ = write!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\" data-t=\"{t}\" data-v=\"{v}\"/>",
                    axis.x(*t),
                    y(*v, max),
                );
            }
        }
        out.push_str("</g>");
    }
    no_data(out, values.count() == 0 && !lines.is_empty());
    out.push_str("</svg>");
}

/// Calls and errors per interval as bars (errors drawn over calls), each interval
/// `(t - step, t]` as wide as it lasted; no bar for a zero.
pub(crate) fn bar_chart(
    out: &mut String,
    id: &str,
    title: &str,
    axis: Axis,
    step_ms: i64,
    bars: &[(i64, u64, u64)],
) {
    let max = nice_max(bars.iter().map(|b| b.1.max(b.2)).max().unwrap_or(0) as f64);
    open(out, id, title, "", axis, max);
    legend(out, &[("calls", "calls"), ("errors", "errors")]);
    let base = y(0.0, max);
    for (series, pick) in [("calls", 1), ("errors", 2)] {
        let _ = write!(out, "<g class=\"{series}\" data-series=\"{series}\">");
        for &(t, calls, errors) in bars {
            let v = if pick == 1 { calls } else { errors };
            if v == 0 {
                continue; // nothing to draw; the JSON has the zero
            }
            let x1 = axis.x(t.saturating_sub(step_ms));
            let x2 = axis.x(t);
            let w = ((x2 - x1) * 0.8).max(1.0);
            let top = y(v as f64, max);
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{:.1}\" \
                 data-t=\"{t}\" data-v=\"{v}\"/>",
                x2 - w,
                base - top,
            );
        }
        out.push_str("</g>");
    }
    no_data(out, bars.is_empty());
    out.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    const AXIS: Axis = Axis {
        from_ms: 0,
        to_ms: 10_000,
    };

    #[test]
    fn gaps_break_the_line_and_have_no_mark() {
        let mut out = String::new();
        let line = Line {
            series: "p50",
            class: "p50",
            points: vec![
                (1_000, Some(10.0)),
                (2_000, None),
                (3_000, Some(20.0)),
                (4_000, Some(f64::NAN).filter(|v| v.is_finite())),
            ],
        };
        line_chart(&mut out, "lat", "Latency", " ms", AXIS, &[line]);
        assert_eq!(out.matches("<circle").count(), 2, "{out}");
        assert!(out.contains("<g class=\"p50\" data-series=\"p50\">"));
        assert!(out.contains("data-t=\"1000\" data-v=\"10\""));
        assert!(out.contains("data-t=\"3000\" data-v=\"20\""));
        // Two segments, each starting with a move: the gap is not bridged.
        let d = out
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert!(!d.contains('L'), "{d}");
        assert!(!out.contains("no data yet"));
    }

    #[test]
    fn an_empty_chart_says_so_and_everything_is_escaped() {
        let mut out = String::new();
        let line = Line {
            series: "<p50>",
            class: "p50",
            points: vec![(1_000, None)],
        };
        line_chart(&mut out, "a\"b", "<script>", "", AXIS, &[line]);
        assert!(out.contains("no data yet"));
        assert!(!out.contains("<script>") && !out.contains("<p50>") && !out.contains("a\"b"));
    }

    #[test]
    fn bars_scale_to_a_nice_maximum() {
        let mut out = String::new();
        bar_chart(
            &mut out,
            "c",
            "Calls",
            AXIS,
            1_000,
            &[(1_000, 7, 0), (2_000, 3, 3)],
        );
        assert_eq!(
            out.matches("<rect").count(),
            3,
            "no bar for zero errors: {out}"
        );
        let errors = out.split("data-series=\"errors\">").nth(1).unwrap();
        assert!(errors.starts_with("<rect") && errors.contains("data-t=\"2000\" data-v=\"3\""));
        assert!(out.contains(">10</text>"), "axis up to 10: {out}");
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(101.0), 200.0);
        assert_eq!(nice_max(0.3), 0.5);
        assert_eq!(clock(3_723_000), "01:02:03");
    }
}
