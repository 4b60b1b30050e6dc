//! Horizontal bar charts as standalone SVG: one bar per cell at its median,
//! a whisker over its min–max range, asyncmsg's bars in another colour, the
//! value printed beside each bar. No dependencies; the text is escaped.

use std::fmt::Write as _;

/// One bar.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    /// Drawn in asyncmsg's colour.
    pub(crate) highlight: bool,
}

/// A chart: a title, the unit of its axis, a formatter for values, bars.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) unit: String,
    /// Whether a smaller value is better (said under the title).
    pub(crate) lower_is_better: bool,
    pub(crate) bars: Vec<Bar>,
}

const WIDTH: f64 = 860.0;
const LABEL_W: f64 = 290.0;
const VALUE_W: f64 = 110.0;
const BAR_H: f64 = 18.0;
const GAP: f64 = 8.0;
const TOP: f64 = 52.0;
const BOTTOM: f64 = 34.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A value with an SI prefix, 3 significant digits.
pub(crate) fn si(v: f64) -> String {
    let (x, p) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$} {p}")
}

/// A round axis maximum at or above `v`: 1, 2 or 5 times a power of ten.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

impl Chart {
    /// The chart as an SVG document.
    pub(crate) fn render(&self) -> String {
        let n = self.bars.len().max(1) as f64;
        let height = TOP + n * (BAR_H + GAP) + BOTTOM;
        let plot_w = WIDTH - LABEL_W - VALUE_W;
        let top_value = self
            .bars
            .iter()
            .map(|b| b.max.max(b.median))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let axis_max = nice_max(top_value);
        let x = |v: f64| LABEL_W + (v.max(0.0) / axis_max).min(1.0) * plot_w;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            s,
            r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="10" y="38" fill="#555">{} — median of the runs, whisker min–max; {}</text>"##,
            escape(&self.unit),
            if self.lower_is_better {
                "shorter is better"
            } else {
                "longer is better"
            }
        );
        // Grid lines and ticks at fifths of the axis.
        let axis_y = TOP + n * (BAR_H + GAP);
        for k in 0..=5 {
            let v = axis_max * f64::from(k) / 5.0;
            let gx = x(v);
            let _ = writeln!(
                s,
                r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{axis_y:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                axis_y + 16.0,
                escape(&si(v))
            );
        }
        for (i, b) in self.bars.iter().enumerate() {
            let y = TOP + i as f64 * (BAR_H + GAP);
            let cy = y + BAR_H / 2.0;
            let fill = if b.highlight { "#d9480f" } else { "#4c6ef5" };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end"{}>{}</text>"#,
                LABEL_W - 8.0,
                cy + 4.0,
                if b.highlight {
                    r#" font-weight="bold""#
                } else {
                    ""
                },
                escape(&b.label)
            );
            if b.median.is_finite() {
                let _ = writeln!(
                    s,
                    r#"<rect x="{LABEL_W}" y="{y:.1}" width="{:.1}" height="{BAR_H}" fill="{fill}"/>"#,
                    (x(b.median) - LABEL_W).max(0.5)
                );
                if b.min.is_finite() && b.max.is_finite() {
                    let _ = writeln!(
                        s,
                        r##"<line x1="{:.1}" y1="{cy:.1}" x2="{:.1}" y2="{cy:.1}" stroke="#222" stroke-width="1.5"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/>"##,
                        x(b.min),
                        x(b.max),
                        x(b.min),
                        y + 3.0,
                        x(b.min),
                        y + BAR_H - 3.0,
                        x(b.max),
                        y + 3.0,
                        x(b.max),
                        y + BAR_H - 3.0
                    );
                }
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                    x(b.max.max(b.median)) + 6.0,
                    cy + 4.0,
                    escape(&si(b.median))
                );
            } else {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" fill="#c00">failed</text>"##,
                    LABEL_W + 4.0,
                    cy + 4.0
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_every_bar_and_escapes_its_text() {
        let chart = Chart {
            title: "a <b> & c".into(),
            unit: "msg/s".into(),
            lower_is_better: false,
            bars: vec![
                Bar {
                    label: "asyncmsg".into(),
                    median: 12e6,
                    min: 10e6,
                    max: 13e6,
                    highlight: true,
                },
                Bar {
                    label: "peer".into(),
                    median: f64::NAN,
                    min: f64::NAN,
                    max: f64::NAN,
                    highlight: false,
                },
            ],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains(">asyncmsg<"));
        assert!(svg.contains(">12.0 M<"));
        assert!(svg.contains(">failed<"));
        assert_eq!(svg.matches("<rect").count(), 2); // background + one bar
    }

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(4.2e6), 5e6);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(si(1234.0), "1.23 k");
        assert_eq!(si(87e6), "87.0 M");
    }
}
