//! The picture: an SVG timeline (one row per target, one coloured bar per phase, a time
//! axis, a legend and the totals), alone or inside a self-contained HTML page with a table
//! of the same numbers. No scripts, no external resources: it opens offline.
//!
//! Rows and bars carry `data-*` attributes (target, outcome, phase, start and end in ms) so
//! that tools and tests read the numbers back without scraping the drawing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::Row;

/// Phases the pipeline reports, their colour, and whether they are work (summed in the
/// totals) or waiting. A phase missing here still draws, in a colour of [`SPARE_COLOURS`].
const PHASES: [(&str, &str, bool); 7] = [
    ("hash", "#8e7cc3", true),
    ("restore", "#3498db", true),
    ("build", "#e67e22", true),
    ("pack", "#27ae60", true),
    ("upload", "#c0392b", true),
    ("queued", "#d5d8dc", false),
    ("waiting", "#aab7b8", false),
];
const SPARE_COLOURS: [&str; 4] = ["#f1c40f", "#16a085", "#d35400", "#7f8c8d"];

const LABEL_W: f64 = 300.0;
const PLOT_W: f64 = 900.0;
const ROW_H: f64 = 24.0;
const BAR_H: f64 = 16.0;
const TOP: f64 = 56.0;
const STYLE: &str = "text { fill: #222; } .title { font-size: 15px; font-weight: bold; } \
.outcome, .tick { fill: #666; } .grid { stroke: #e5e5e5; } .row:hover .bg { fill: #f4f6f7; }";

/// A standalone SVG document.
pub fn svg(title: &str, rows: &[Row], total: Duration) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}", svg_element(title, rows, total))
}

/// An HTML page: heading, the SVG inline, a table of per-phase times per target.
pub fn html(title: &str, rows: &[Row], total: Duration) -> String {
    let phases = phases_in(rows);
    let mut out = String::new();
    let heading = escape(title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>tbuild timings: {heading}</title>\n\
<style>body {{ font-family: sans-serif; margin: 1.5em; }} table {{ border-collapse: collapse; margin-top: 1em; }} \
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }} td:first-child, td:nth-child(2) {{ text-align: left; }}</style>\n\
</head>\n<body>\n<h1>tbuild timings</h1>\n<p>{heading}</p>\n"
    );
    out.push_str(&svg_element(title, rows, total));
    out.push_str("\n<table class=\"targets\">\n<tr><th>target</th><th>outcome</th>");
    for phase in &phases {
        let _ = write!(out, "<th>{}</th>", escape(phase));
    }
    out.push_str("</tr>\n");
    for row in rows {
        let _ = write!(
            out,
            "<tr data-target=\"{}\"><td>{}</td><td>{}</td>",
            escape(&row.target),
            escape(&row.target),
            escape(row.outcome.as_deref().unwrap_or(""))
        );
        for phase in &phases {
            let ms: u128 = row.spans.iter().filter(|s| &s.phase == phase).map(|s| (s.end - s.start).as_millis()).sum();
            let _ = write!(out, "<td>{}</td>", seconds(ms as f64));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

fn svg_element(title: &str, rows: &[Row], total: Duration) -> String {
    let total_ms = (total.as_millis() as f64).max(1.0);
    let x_of = |d: Duration| LABEL_W + d.as_secs_f64() * 1000.0 / total_ms * PLOT_W;
    let phases = phases_in(rows);
    let rows_h = rows.len() as f64 * ROW_H;
    let legend_y = TOP + rows_h + 24.0;
    let height = legend_y + 64.0;
    let width = LABEL_W + PLOT_W + 20.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"tbuild-timings\" width=\"{width}\" height=\"{height}\" \
viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\" data-total-ms=\"{}\">\n<style>{STYLE}</style>\n\
<text class=\"title\" x=\"8\" y=\"20\">tbuild timings: {}</text>\n",
        total.as_millis(),
        escape(title)
    );

    // Time axis: about eight ticks at 1, 2 or 5 times a power of ten.
    out.push_str("<g class=\"axis\">\n");
    let step = tick_step(total_ms);
    let mut t = 0.0;
    while t <= total_ms {
        let x = LABEL_W + t / total_ms * PLOT_W;
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            TOP - 8.0,
            TOP + rows_h,
            TOP - 12.0,
            seconds(t)
        );
        t += step;
    }
    out.push_str("</g>\n");

    for (i, row) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        let outcome = row.outcome.as_deref().unwrap_or("");
        let _ = writeln!(
            out,
            "<g class=\"row\" data-target=\"{}\" data-outcome=\"{}\">\n<rect class=\"bg\" x=\"0\" y=\"{y:.1}\" width=\"{width}\" height=\"{ROW_H}\" fill=\"none\"/>\n\
<text x=\"8\" y=\"{:.1}\">{}</text><text class=\"outcome\" x=\"130\" y=\"{:.1}\">{}</text>",
            escape(&row.target),
            escape(outcome),
            y + 16.0,
            escape(&row.target),
            y + 16.0,
            escape(&shorten(outcome, 28))
        );
        for span in &row.spans {
            let (x1, x2) = (x_of(span.start), x_of(span.end));
            let _ = writeln!(
                out,
                "<rect class=\"span\" data-phase=\"{}\" data-start-ms=\"{}\" data-end-ms=\"{}\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{BAR_H}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                escape(&span.phase),
                span.start.as_millis(),
                span.end.as_millis(),
                y + (ROW_H - BAR_H) / 2.0,
                (x2 - x1).max(1.0),
                colour(&span.phase, &phases),
                escape(&row.target),
                escape(&span.phase),
                seconds((span.end - span.start).as_millis() as f64)
            );
        }
        out.push_str("</g>\n");
    }

    // Legend: the phases that occurred, in pipeline order.
    out.push_str("<g class=\"legend\">\n");
    for (i, phase) in phases.iter().enumerate() {
        let x = 8.0 + i as f64 * 110.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{legend_y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            colour(phase, &phases),
            x + 16.0,
            legend_y + 11.0,
            escape(phase)
        );
    }
    out.push_str("</g>\n");

    let _ = writeln!(
        out,
        "<g class=\"totals\"><text x=\"8\" y=\"{:.1}\">{}</text><text x=\"8\" y=\"{:.1}\">{}</text></g>\n</svg>",
        legend_y + 34.0,
        escape(&summary_line(rows, total)),
        legend_y + 52.0,
        escape(&phase_totals_line(rows, &phases))
    );
    out
}

/// `12.3 s wall, 5 targets: 2 restored, 3 built, 0 failed`.
fn summary_line(rows: &[Row], total: Duration) -> String {
    let count =
        |prefix: &str| rows.iter().filter(|r| r.outcome.as_deref().is_some_and(|o| o.starts_with(prefix))).count();
    format!(
        "{} wall, {} targets: {} restored, {} built, {} failed",
        seconds(total.as_millis() as f64),
        rows.len(),
        count("restored"),
        count("built"),
        count("FAILED")
    )
}

/// `summed over targets: hash 1.2 s, build 30 s, ...` for the work phases that occurred.
fn phase_totals_line(rows: &[Row], phases: &[String]) -> String {
    let mut sums: BTreeMap<&str, u128> = BTreeMap::new();
    for span in rows.iter().flat_map(|r| &r.spans) {
        *sums.entry(span.phase.as_str()).or_default() += (span.end - span.start).as_millis();
    }
    let parts: Vec<String> = phases
        .iter()
        .filter(|p| PHASES.iter().find(|k| k.0 == p.as_str()).is_none_or(|k| k.2))
        .map(|p| format!("{p} {}", seconds(sums.get(p.as_str()).copied().unwrap_or(0) as f64)))
        .collect();
    format!("summed over targets: {}", parts.join(", "))
}

/// Phases that occur, known ones in pipeline order, then others by first appearance.
fn phases_in(rows: &[Row]) -> Vec<String> {
    let seen: Vec<&str> = rows.iter().flat_map(|r| r.spans.iter().map(|s| s.phase.as_str())).collect();
    let mut phases: Vec<String> = PHASES.iter().map(|p| p.0).filter(|p| seen.contains(p)).map(String::from).collect();
    for phase in seen {
        if !phases.iter().any(|p| p == phase) {
            phases.push(phase.to_string());
        }
    }
    phases
}

fn colour(phase: &str, phases: &[String]) -> &'static str {
    if let Some(known) = PHASES.iter().find(|p| p.0 == phase) {
        return known.1;
    }
    let unknown = phases.iter().filter(|p| !PHASES.iter().any(|k| k.0 == p.as_str())).position(|p| p == phase);
    SPARE_COLOURS[unknown.unwrap_or(0) % SPARE_COLOURS.len()]
}

fn tick_step(total_ms: f64) -> f64 {
    let raw = total_ms / 8.0;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power).max(1.0)
}

/// `850 ms`, `12.3 s`.
fn seconds(ms: f64) -> String {
    if ms < 1000.0 { format!("{ms:.0} ms") } else { format!("{:.1} s", ms / 1000.0) }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Span;
    use super::*;

    fn row(target: &str, spans: &[(&str, u64, u64)], outcome: &str) -> Row {
        Row {
            target: target.into(),
            spans: spans
                .iter()
                .map(|(p, a, b)| Span {
                    phase: p.to_string(),
                    start: Duration::from_millis(*a),
                    end: Duration::from_millis(*b),
                })
                .collect(),
            outcome: Some(outcome.into()),
            open: None,
        }
    }

    #[test]
    fn unknown_phases_get_a_colour_and_a_legend_entry_and_text_is_escaped() {
        let rows = [
            row("a<b", &[("hash", 0, 10), ("build", 10, 900), ("sign", 900, 950)], "built & \"ok\""),
            row("c", &[("hash", 0, 10), ("restore", 10, 40)], "restored (1 MiB)"),
        ];
        let svg = svg("sha <1>", &rows, Duration::from_millis(1000));
        assert!(svg.contains("data-target=\"a&lt;b\"") && svg.contains("data-outcome=\"built &amp; &quot;ok&quot;\""));
        assert!(svg.contains("data-phase=\"sign\" data-start-ms=\"900\" data-end-ms=\"950\""));
        assert!(svg.contains(">sign</text>"), "a new phase is in the legend");
        assert!(svg.contains("fill=\"#f1c40f\""), "in a spare colour");
        assert!(svg.contains("1.0 s wall, 2 targets: 1 restored, 1 built, 0 failed"));
        assert!(svg.contains("build 890 ms") && svg.contains("sign 50 ms"));
        assert!(!svg.contains("sha <1>"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(1000.0), 200.0);
        assert_eq!(tick_step(60_000.0), 10_000.0);
        assert_eq!(tick_step(1.0), 1.0);
    }
}
