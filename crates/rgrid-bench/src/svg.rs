//! The chart written by `--svg`: ops/s against concurrency, one line per system (and grid
//! size), one panel for single requests and one for streams. Hand-written SVG: log2 x axis
//! at the measured concurrency levels, log10 y axis with 1-2-5 ticks labelled like `100k`.

use std::fmt::Write as _;

use crate::report::{
    FLOOR, Group, RGRID_BYTES, RGRID_REQUEST, RGRID_RESPONSES, RGRID_RPC, RGRID_TWOWAY, Record,
    TONIC_BIDI, TONIC_CLIENT_STREAM, TONIC_SERVER_STREAM, TONIC_UNARY, base_system,
};

const PANEL_W: f64 = 660.0;
const PLOT_LEFT: f64 = 78.0;
const PLOT_W: f64 = 340.0;
const PLOT_TOP: f64 = 74.0;
const PLOT_H: f64 = 360.0;
const LEGEND_X: f64 = PLOT_LEFT + PLOT_W + 16.0;
const FOOTER_TOP: f64 = PLOT_TOP + PLOT_H + 62.0;
const FOOTER_LINE: f64 = 18.0;

/// Formats a count with a k/M suffix: `500`, `2k`, `2.5k`, `100k`, `1M`.
pub fn si(v: f64) -> String {
    let (x, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x >= 100.0 || (x - x.round()).abs() < 0.05 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    };
    format!("{s}{suffix}")
}

/// The 1-2-5 values from the largest one at or below `lo` to the smallest one at or above
/// `hi` (both positive). Spans above four decades keep only the powers of ten.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return vec![1.0, 10.0];
    }
    let mut all = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 10.0 {
        for m in [1.0, 2.0, 5.0] {
            all.push(m * decade);
        }
        decade *= 10.0;
    }
    let first = all
        .iter()
        .rposition(|&t| t <= lo * (1.0 + 1e-9))
        .unwrap_or(0);
    let last = all
        .iter()
        .position(|&t| t >= hi * (1.0 - 1e-9))
        .unwrap_or(all.len() - 1);
    let mut out: Vec<f64> = all[first..=last.max(first)].to_vec();
    if out.len() < 2 {
        out.push(out.first().map_or(10.0, |&t| t * 2.0));
    }
    if out.len() > 13 {
        let lo_t = out[0];
        let hi_t = out[out.len() - 1];
        out.retain(|&t| {
            let l = t.log10();
            (l - l.round()).abs() < 1e-9 || t == lo_t || t == hi_t
        });
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The color of a system; the windowed stream variants (`rgrid twoway w16`) get a lighter
/// shade of their shape's color.
fn color(system: &str) -> &'static str {
    let base = base_system(system);
    if base != system {
        return match base {
            RGRID_TWOWAY => "#6baed6",
            RGRID_REQUEST => "#7fdbe6",
            RGRID_RESPONSES => "#c5b0d5",
            _ => "#555555",
        };
    }
    match system {
        FLOOR => "#7f7f7f",
        TONIC_UNARY | TONIC_BIDI => "#d62728",
        TONIC_CLIENT_STREAM => "#ff7f0e",
        TONIC_SERVER_STREAM => "#8c564b",
        RGRID_BYTES | RGRID_TWOWAY => "#1f77b4",
        RGRID_RPC => "#2ca02c",
        RGRID_REQUEST => "#17becf",
        RGRID_RESPONSES => "#9467bd",
        _ => "#000000",
    }
}

/// Dash pattern by grid size: baselines and the smallest grid solid, then dashed, dotted.
fn dash(servers: Option<usize>, all_servers: &[usize]) -> &'static str {
    match servers.and_then(|n| all_servers.iter().position(|&s| s == n)) {
        None | Some(0) => "",
        Some(1) => "7 4",
        Some(_) => "2 3",
    }
}

struct Series<'a> {
    label: String,
    system: &'a str,
    servers: Option<usize>,
    points: Vec<(usize, f64)>,
}

fn series(records: &[Record], group: Group) -> Vec<Series<'_>> {
    let mut out: Vec<Series<'_>> = Vec::new();
    for r in records.iter().filter(|r| r.group == group) {
        let i = match out
            .iter()
            .position(|s| s.system == r.system && s.servers == r.servers)
        {
            Some(i) => i,
            None => {
                out.push(Series {
                    label: r.label(),
                    system: &r.system,
                    servers: r.servers,
                    points: Vec::new(),
                });
                out.len() - 1
            }
        };
        if r.ops_per_sec > 0.0 {
            out[i].points.push((r.concurrency, r.ops_per_sec));
        }
    }
    for s in &mut out {
        s.points.sort_by_key(|p| p.0);
    }
    out
}

fn panel(
    svg: &mut String,
    x0: f64,
    title: &str,
    unit: &str,
    list: &[Series<'_>],
    servers: &[usize],
) {
    let left = x0 + PLOT_LEFT;
    let right = left + PLOT_W;
    let top = PLOT_TOP;
    let bottom = PLOT_TOP + PLOT_H;
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        top - 14.0,
        escape(title)
    );

    let mut concs: Vec<usize> = list
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    concs.sort_unstable();
    concs.dedup();
    let values: Vec<f64> = list
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    if concs.is_empty() || values.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#777">no points</text>"##,
            left + PLOT_W / 2.0,
            top + PLOT_H / 2.0
        );
        return;
    }
    let ys = ticks(
        values.iter().copied().fold(f64::INFINITY, f64::min),
        values.iter().copied().fold(0.0, f64::max),
    );
    let (ylo, yhi) = (ys[0].log10(), ys[ys.len() - 1].log10());
    let y = |v: f64| bottom - (v.log10() - ylo) / (yhi - ylo).max(1e-9) * PLOT_H;
    let (xlo, xhi) = (
        (concs[0] as f64).log2(),
        (concs[concs.len() - 1] as f64).log2(),
    );
    let x = |c: usize| {
        if xhi > xlo {
            left + 12.0 + ((c as f64).log2() - xlo) / (xhi - xlo) * (PLOT_W - 24.0)
        } else {
            left + PLOT_W / 2.0
        }
    };

    // Frame, grid and tick labels.
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{PLOT_W}" height="{PLOT_H}" fill="#ffffff" stroke="#444" stroke-width="1"/>"##
    );
    for &t in &ys {
        let ty = y(t);
        let major = (t.log10() - t.log10().round()).abs() < 1e-9;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{ty:.1}" x2="{right}" y2="{ty:.1}" stroke="{}" stroke-width="1"/>"##,
            if major { "#c8c8c8" } else { "#ececec" }
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="12">{}</text>"#,
            left - 6.0,
            ty + 4.0,
            si(t)
        );
    }
    for &c in &concs {
        let tx = x(c);
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{bottom}" stroke="#ececec" stroke-width="1"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{tx:.1}" y="{}" text-anchor="middle" font-size="12">{c}</text>"#,
            bottom + 17.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">concurrency (client tasks, log2 scale)</text>"#,
        left + PLOT_W / 2.0,
        bottom + 36.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle" font-size="12">{} (log scale)</text>"#,
        x0 + 18.0,
        top + PLOT_H / 2.0,
        escape(unit)
    );

    // Lines, markers and legend.
    for (i, s) in list.iter().enumerate() {
        let c = color(s.system);
        let d = dash(s.servers, servers);
        let dash_attr = if d.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{d}""#)
        };
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(cc, v)| format!("{:.1},{:.1}", x(cc), y(v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"{dash_attr}/>"#,
            pts.join(" ")
        );
        for &(cc, v) in &s.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{} at {cc}: {} {}</title></circle>"#,
                x(cc),
                y(v),
                escape(&s.label),
                si(v),
                escape(unit)
            );
        }
        let ly = top + 10.0 + i as f64 * 20.0;
        let lx = x0 + LEGEND_X;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="2"{dash_attr}/>"#,
            lx + 26.0
        );
        let _ = writeln!(
            svg,
            r#"<circle cx="{}" cy="{ly}" r="3" fill="{c}"/>"#,
            lx + 13.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="12">{}</text>"#,
            lx + 32.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
}

/// The chart of `records` (single requests and streams; the head-of-line points are left
/// out) under `title`, with `footer` lines of text below the panels. `servers` orders the
/// dash patterns of the rgrid grid sizes.
pub fn render(records: &[Record], servers: &[usize], title: &str, footer: &[String]) -> String {
    let panels: Vec<(Group, &str, &str)> = [
        (Group::Requests, "Single requests (512 B echo)", "calls/s"),
        (
            Group::Streams,
            "Streams (MinIO shapes, 10 x 512 B messages)",
            "streams/s",
        ),
    ]
    .into_iter()
    .filter(|(g, _, _)| records.iter().any(|r| r.group == *g))
    .collect();
    let n = panels.len().max(1);
    let width = PANEL_W * n as f64;
    let height = FOOTER_TOP + FOOTER_LINE * footer.len() as f64 + 8.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="20" y="30" font-size="18" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (i, (group, name, unit)) in panels.iter().enumerate() {
        let list = series(records, *group);
        panel(&mut svg, PANEL_W * i as f64, name, unit, &list, servers);
    }
    for (i, line) in footer.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="20" y="{}" font-size="13">{}</text>"#,
            FOOTER_TOP + FOOTER_LINE * i as f64,
            escape(line)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn si_labels() {
        assert_eq!(si(500.0), "500");
        assert_eq!(si(1000.0), "1k");
        assert_eq!(si(2500.0), "2.5k");
        assert_eq!(si(20_000.0), "20k");
        assert_eq!(si(100_000.0), "100k");
        assert_eq!(si(523_456.0), "523k");
        assert_eq!(si(1_000_000.0), "1M");
        assert_eq!(si(2_000_000.0), "2M");
    }

    #[test]
    fn ticks_cover_the_range_with_1_2_5_steps() {
        assert_eq!(
            ticks(8_000.0, 500_000.0),
            [5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5]
        );
        assert_eq!(ticks(10_000.0, 10_000.0), [1e4, 2e4]);
        assert_eq!(ticks(3_000.0, 4_000.0), [2e3, 5e3]);
        let wide = ticks(1.0, 1e9);
        assert!(wide.len() <= 13, "{wide:?}");
        assert_eq!(wide[0], 1.0);
        assert_eq!(ticks(0.0, 5.0), [1.0, 10.0]);
    }

    #[test]
    fn chart_has_both_panels_a_line_per_series_and_a_legend() {
        let v = sample();
        let svg = render(&v, &[2, 4], "t & t", &["footer <1>".to_owned()]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &amp; t"));
        assert!(svg.contains("footer &lt;1&gt;"));
        // Requests: floor, tonic unary, bytes 2 and 4; streams: bidi, twoway 2.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert!(svg.contains(">rgrid bytes (4 srv)</text>"));
        assert!(svg.contains(">tonic bidi</text>"));
        assert!(svg.contains("stroke-dasharray=\"7 4\""));
        assert!(svg.contains(">100k</text>"));
        assert!(svg.contains("Streams"));
        // Width of two panels.
        assert!(svg.contains(r#"width="1320""#));
        // Every coordinate is a finite number inside the picture.
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn one_group_one_panel_and_a_single_concurrency_does_not_divide_by_zero() {
        let v: Vec<Record> = sample()
            .into_iter()
            .filter(|r| r.group == Group::Requests && r.concurrency == 8)
            .collect();
        let svg = render(&v, &[2, 4], "t", &[]);
        assert!(svg.contains(r#"width="660""#));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(svg.matches("<polyline").count(), 4);
    }
}
