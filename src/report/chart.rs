//! The comparison as an SVG picture: horizontal bars on log scales, labelled
//! axes with units, the reader's host in the title. Hand-written SVG: no
//! fonts or scripts to fetch, readable in any browser or image viewer.

use std::fmt::Write;

use crate::compare::Comparison;

const WIDTH: f64 = 860.0;
const LABEL_W: f64 = 330.0;
const BAR_W: f64 = 410.0;
const ROW_H: f64 = 26.0;
const COLORS: [&str; 8] = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#c53030", "#2c7a7b", "#975a16"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

struct Bar {
    label: String,
    value: f64,
    text: String,
    color: &'static str,
}

/// Ticks 1-2-5 per decade between lo and hi.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo && t <= hi {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}

fn tick_label(t: f64) -> String {
    if t >= 1000.0 {
        format!("{}k", t / 1000.0)
    } else if t >= 1.0 {
        format!("{t}")
    } else {
        format!("{t:.1}")
    }
}

fn panel(svg: &mut String, y: f64, title: &str, axis: &str, bars: &[Bar], empty: &str, reference: Option<f64>) -> f64 {
    let _ = writeln!(svg, r#"<text x="20" y="{}" font-size="16" font-weight="bold">{}</text>"#, y + 20.0, esc(title));
    let top = y + 34.0;
    if bars.is_empty() {
        let _ = writeln!(svg, r##"<text x="30" y="{}" font-size="13" fill="#555">{}</text>"##, top + 16.0, esc(empty));
        return top + 34.0;
    }
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let min = bars.iter().map(|b| b.value).fold(f64::MAX, f64::min);
    let lo = 10f64.powf((min.min(reference.unwrap_or(min)) * 0.8).log10().floor());
    let hi = 10f64.powf((max * 1.25).log10().ceil());
    let x = |v: f64| LABEL_W + (v.log10() - lo.log10()) / (hi.log10() - lo.log10()) * BAR_W;
    let bottom = top + bars.len() as f64 * ROW_H;
    for t in ticks(lo, hi) {
        let _ = writeln!(svg, r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{bottom}" stroke="#ddd"/>"##, x(t));
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#444">{}</text>"##,
            x(t),
            bottom + 14.0,
            tick_label(t)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let row = top + i as f64 * ROW_H;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="13" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            row + 17.0,
            esc(&b.label)
        );
        let w = (x(b.value) - LABEL_W).max(1.0);
        let _ = writeln!(
            svg,
            r#"<rect x="{LABEL_W}" y="{}" width="{w:.1}" height="{}" fill="{}"/>"#,
            row + 4.0,
            ROW_H - 8.0,
            b.color
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="12">{}</text>"#,
            LABEL_W + w + 6.0,
            row + 17.0,
            esc(&b.text)
        );
    }
    if let Some(r) = reference {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{bottom}" stroke="#222" stroke-dasharray="4 3"/>"##,
            x(r),
            top - 4.0
        );
    }
    let _ =
        writeln!(svg, r##"<line x1="{LABEL_W}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#222"/>"##, LABEL_W + BAR_W);
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" font-size="12" text-anchor="middle" fill="#222">{}</text>"##,
        LABEL_W + BAR_W / 2.0,
        bottom + 32.0,
        esc(axis)
    );
    bottom + 48.0
}

/// Renders the comparison: overhead relative to bare metal, then start times,
/// memory, and emulated against paravirtual devices.
pub(crate) fn svg(cmp: &Comparison) -> String {
    let color_of = |tier: &str| {
        let tiers = [
            "bare metal",
            "hardware partitioning",
            "containers",
            "User-Mode-Linux",
            "software emulation",
            "hardware-assisted",
            "paravirtual",
            "emulated devices",
        ];
        COLORS[tiers.iter().position(|t| tier.starts_with(t)).unwrap_or(0) % COLORS.len()]
    };
    let overhead: Vec<Bar> = cmp
        .rows
        .iter()
        .filter_map(|r| {
            let x = r.vs_bare_metal?;
            Some(Bar {
                label: format!("{}: {}", r.title, r.tier),
                value: x,
                text: format!("{x:.2}×"),
                color: color_of(&r.tier),
            })
        })
        .collect();
    let absolute = |metric: &str| -> Vec<Bar> {
        cmp.rows
            .iter()
            .filter(|r| r.metric == metric)
            .filter_map(|r| {
                let v = r.value?;
                Some(Bar {
                    label: r.tier.clone(),
                    value: v.max(0.001),
                    text: format!("{v:.0} {}", r.unit),
                    color: color_of(&r.tier),
                })
            })
            .collect()
    };
    let mut body = String::new();
    let mut y = 50.0;
    y = panel(
        &mut body,
        y,
        "Overhead relative to bare metal (per tier, per measurement)",
        "times the bare-metal cost (log scale; dashed line = bare metal, 1×)",
        &overhead,
        "no numbers yet: run 01-bare-metal and another tier's lab",
        Some(1.0),
    );
    y = panel(
        &mut body,
        y,
        "Start or boot time",
        "milliseconds to a running instance (log scale)",
        &absolute("start"),
        "no numbers yet: run 06-density, 07-uml, 09-software-emulation",
        None,
    );
    y = panel(
        &mut body,
        y,
        "Memory per instance",
        "KiB per running instance (log scale)",
        &absolute("memory"),
        "no numbers yet: run 06-density",
        None,
    );
    y = panel(
        &mut body,
        y,
        "Emulated against paravirtual devices: disk",
        "KiB/s written by the guest (log scale)",
        &absolute("pvdisk"),
        "no numbers yet: run 11-pv-drivers",
        None,
    );
    y = panel(
        &mut body,
        y,
        "Emulated against paravirtual devices: bytes to the host",
        "Mbit/s counted by the runner's sink (log scale)",
        &absolute("pvnet"),
        "no numbers yet: run 11-pv-drivers",
        None,
    );
    let height = y + 10.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="30" font-size="19" font-weight="bold">Every tier, measured on {}</text>
{body}</svg>
"##,
        esc(&cmp.host)
    )
}
