//! The heartbeat plot: one polyline per worker, gap (ms, log scale) over time
//! since the load began, with the interval, 2x (the router's unhealthy
//! threshold) and 5x (the gateway's close) drawn as reference lines.

use std::fmt::Write;

const W: f64 = 1000.0;
const H: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b"];

/// `series`: (label, [(seconds, gap ms)]). `interval_ms`: the heartbeat interval.
pub fn heartbeats(title: &str, series: &[(String, Vec<(f64, f64)>)], interval_ms: f64) -> String {
    let t_max = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.0)).fold(1.0_f64, f64::max).ceil();
    let g_max = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1)).fold(interval_ms * 10.0, f64::max);
    let (y_lo, y_hi) = ((interval_ms / 2.0).log10(), (g_max * 1.2).log10());
    let x = |t: f64| LEFT + t / t_max * (W - LEFT - RIGHT);
    let y = |g: f64| TOP + (1.0 - (g.max(1e-3).log10() - y_lo) / (y_hi - y_lo)) * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#, escape(title));
    // Y grid: decades and the reference lines.
    let mut tick = 10f64.powf(y_lo.floor());
    while tick.log10() <= y_hi {
        for m in [1.0, 2.0, 5.0] {
            let g = tick * m;
            if g.log10() < y_lo || g.log10() > y_hi {
                continue;
            }
            let yy = y(g);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                yy + 4.0,
                fmt_ms(g)
            );
        }
        tick *= 10.0;
    }
    for (mult, label) in [(1.0, "interval"), (2.0, "2x: unhealthy"), (5.0, "5x: closed")] {
        let yy = y(interval_ms * mult);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#999" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="#777">{label}</text>"##,
            W - RIGHT,
            LEFT + 4.0,
            yy - 3.0
        );
    }
    // X axis.
    let step = if t_max > 20.0 { 5.0 } else { 1.0 };
    let mut t = 0.0;
    while t <= t_max {
        let xx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#f4f4f4"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{t}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the load began</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">heartbeat gap at the gateway (log)</text>"#,
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    for (i, (label, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = points.iter().map(|(t, g)| format!("{:.1},{:.1}", x(*t), y(*g))).collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.3" stroke-opacity="0.85" points="{}"/>"#,
            pts.join(" ")
        );
        // Gaps past the router's unhealthy threshold get a marker, so a lone one shows.
        for (t, g) in points.iter().filter(|(_, g)| *g > interval_ms * 2.0) {
            let _ = writeln!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#, x(*t), y(*g));
        }
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let lx = W - RIGHT + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 14.0,
            lx + 18.0,
            ly + 4.0,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_ms(g: f64) -> String {
    if g >= 1000.0 { format!("{} s", g / 1000.0) } else { format!("{g} ms") }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_polyline_per_worker() {
        let series = vec![
            ("a".to_owned(), vec![(0.0, 100.0), (1.0, 101.0)]),
            ("b <js>".to_owned(), vec![(0.5, 900.0)]),
        ];
        let svg = super::heartbeats("t", &series, 100.0);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1, "the 900 ms gap is marked");
        assert!(svg.contains("b &lt;js&gt;"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
