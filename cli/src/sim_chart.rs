//! The chart of `unchoke simulate`: distribution time against the number of peers, as SVG.
//!
//! Three curves — the client-server time `D_cs`, the P2P lower bound and the P2P time the
//! simulator measured — like the textbook figure. It is drawn with `plotters`' SVG backend
//! alone: the text goes into the SVG as `<text>` elements that the viewer renders, and
//! plotters lays it out with its built-in size estimate, so no font file is needed here.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// Swarms beyond this size switch the chart to log-log axes: client-server time grows
/// linearly with N while the P2P time stays flat, and on linear axes the small swarms
/// would be squashed into the corner.
const LOG_AXES_ABOVE: usize = 100;
/// The chart's size in pixels.
const SIZE: (u32, u32) = (960, 600);

/// One swarm size's times, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ChartPoint {
    /// N, the number of downloading peers.
    pub(crate) peers: usize,
    /// `D_cs = max{N·F/u_s, F/d_min}`.
    pub(crate) client_server: f64,
    /// `D_p2p = max{F/u_s, F/d_min, N·F/(u_s+Σu)}`.
    pub(crate) p2p_bound: f64,
    /// The simulated protocol's time; `None` when that run did not complete.
    pub(crate) measured: Option<f64>,
}

/// What the chart shows besides the points.
pub(crate) struct ChartText<'a> {
    /// The title above the chart.
    pub(crate) title: &'a str,
    /// A horizontal reference line, e.g. `F/u` (one peer's time to upload the file), and
    /// its legend text.
    pub(crate) reference: Option<(f64, &'a str)>,
}

/// Legend text of the client-server curve.
pub(crate) const LEGEND_CLIENT_SERVER: &str = "client-server D_cs";
/// Legend text of the P2P lower bound.
pub(crate) const LEGEND_P2P_BOUND: &str = "P2P lower bound";
/// Legend text of the simulated curve.
pub(crate) const LEGEND_MEASURED: &str = "measured P2P (simulated unchoke)";

/// The unit of the y axis, picked so the largest time reads as a small number.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
}

impl TimeUnit {
    fn for_max(max_seconds: f64) -> TimeUnit {
        if max_seconds >= 2.0 * 3600.0 {
            TimeUnit::Hours
        } else if max_seconds >= 2.0 * 60.0 {
            TimeUnit::Minutes
        } else {
            TimeUnit::Seconds
        }
    }

    fn seconds(self) -> f64 {
        match self {
            TimeUnit::Seconds => 1.0,
            TimeUnit::Minutes => 60.0,
            TimeUnit::Hours => 3600.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Minutes => "minutes",
            TimeUnit::Hours => "hours",
        }
    }
}

/// The chart of `points` as an SVG document.
pub(crate) fn render_svg(points: &[ChartPoint], text: &ChartText<'_>) -> Result<String, String> {
    let mut points: Vec<ChartPoint> = points
        .iter()
        .copied()
        .filter(|p| p.client_server.is_finite() && p.p2p_bound.is_finite())
        .map(|p| ChartPoint {
            // A run that did not complete has no time to draw.
            measured: p.measured.filter(|m| m.is_finite()),
            ..p
        })
        .collect();
    points.sort_by_key(|p| p.peers);
    let max_n = points.iter().map(|p| p.peers).max().unwrap_or(0);
    let log = max_n > LOG_AXES_ABOVE;
    if log {
        // Log axes cannot show N = 0 nor a time of 0.
        points.retain(|p| p.peers > 0 && p.client_server > 0.0 && p.p2p_bound > 0.0);
        for p in &mut points {
            p.measured = p.measured.filter(|m| *m > 0.0);
        }
    }
    let times = || {
        points
            .iter()
            .flat_map(|p| [Some(p.client_server), Some(p.p2p_bound), p.measured])
            .flatten()
            .chain(text.reference.map(|(t, _)| t))
            .filter(|t| t.is_finite() && *t > 0.0)
    };
    let max_t = times().fold(0.0, f64::max);
    let unit = TimeUnit::for_max(max_t);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        if log {
            let min_t = times().fold(f64::INFINITY, f64::min);
            let (min_t, max_t) = if min_t.is_finite() {
                (min_t, max_t)
            } else {
                (1.0, 10.0)
            };
            let x = (1.0..(max_n as f64 * 1.2)).log_scale();
            let y = ((min_t / unit.seconds() / 1.5)..(max_t / unit.seconds() * 1.5)).log_scale();
            draw(&root, x, y, &points, text, unit, "N, peers (log scale)")?;
        } else {
            let x = 0.0..(max_n.max(1) as f64);
            let top = if max_t > 0.0 {
                max_t / unit.seconds() * 1.08
            } else {
                1.0
            };
            draw(&root, x, 0.0..top, &points, text, unit, "N, peers")?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn chart_error<E: std::fmt::Display>(e: E) -> String {
    format!("drawing the chart: {e}")
}

/// Draws the axes, the curves and the legend, on linear or log coordinates alike.
fn draw<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    x: X,
    y: Y,
    points: &[ChartPoint],
    text: &ChartText<'_>,
    unit: TimeUnit,
    x_desc: &str,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(text.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(format!("distribution time, {}", unit.name()))
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235))
        // N is a whole number: label only the ticks that fall on one.
        .x_label_formatter(&|n: &f64| {
            if (n - n.round()).abs() < 1e-9 {
                format!("{n:.0}")
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(chart_error)?;
    let scale = unit.seconds();
    let red = RGBColor(200, 40, 40);
    let blue = RGBColor(30, 90, 200);
    let green = RGBColor(20, 140, 60);
    let grey = RGBColor(130, 130, 130);

    if let Some((t, label)) = text.reference {
        let (lo, hi) = match (points.first(), points.last()) {
            (Some(a), Some(b)) => (a.peers as f64, b.peers as f64),
            _ => (0.0, 1.0),
        };
        chart
            .draw_series(DashedLineSeries::new(
                [(lo, t / scale), (hi, t / scale)],
                6,
                4,
                grey.stroke_width(1),
            ))
            .map_err(chart_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], grey.stroke_width(1)));
    }
    chart
        .draw_series(LineSeries::new(
            points
                .iter()
                .map(|p| (p.peers as f64, p.client_server / scale)),
            red.stroke_width(2),
        ))
        .map_err(chart_error)?
        .label(LEGEND_CLIENT_SERVER)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], red.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            points.iter().map(|p| (p.peers as f64, p.p2p_bound / scale)),
            8,
            4,
            blue.stroke_width(2),
        ))
        .map_err(chart_error)?
        .label(LEGEND_P2P_BOUND)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], blue.stroke_width(2)));
    chart
        .draw_series(
            LineSeries::new(
                points
                    .iter()
                    .filter_map(|p| p.measured.map(|m| (p.peers as f64, m / scale))),
                green.stroke_width(2),
            )
            .point_size(3),
        )
        .map_err(chart_error)?
        .label(LEGEND_MEASURED)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], green.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default study's shape: F/u = 3600 s, u_s = 10u, d = u_s.
    fn textbook(ns: impl IntoIterator<Item = usize>) -> Vec<ChartPoint> {
        ns.into_iter()
            .map(|n| {
                let nf = n as f64;
                let cs = if n == 0 { 0.0 } else { nf * 360.0 };
                let p2p = if n == 0 {
                    0.0
                } else {
                    (360.0f64).max(nf * 3600.0 / (10.0 + nf))
                };
                ChartPoint {
                    peers: n,
                    client_server: cs,
                    p2p_bound: p2p,
                    measured: Some(p2p * 1.1),
                }
            })
            .collect()
    }

    fn text() -> ChartText<'static> {
        ChartText {
            title: "Distribution time <of> a 64 MiB file",
            reference: Some((3600.0, "F/u, one peer's upload time")),
        }
    }

    #[test]
    fn textbook_chart_has_curves_axes_and_legend() {
        let svg = render_svg(&textbook(0..=30), &text()).expect("render");
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for legend in [LEGEND_CLIENT_SERVER, LEGEND_P2P_BOUND, LEGEND_MEASURED] {
            assert!(svg.contains(legend), "legend {legend:?} missing");
        }
        // Title escaped, axis labels present, hours on y (D_cs reaches 3 h).
        assert!(svg.contains("Distribution time &lt;of&gt; a 64 MiB file"));
        assert!(
            svg.contains("F/u, one peer&apos;s upload time") || svg.contains("F/u, one peer's")
        );
        assert!(svg.contains("distribution time, hours"));
        assert!(svg.contains("N, peers"));
        // Measured points are drawn as circles: one per N.
        assert_eq!(svg.matches("<circle").count(), 31);
        // Three series polylines plus the reference line at least.
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
    }

    #[test]
    fn unit_follows_the_largest_time() {
        assert_eq!(TimeUnit::for_max(30.0), TimeUnit::Seconds);
        assert_eq!(TimeUnit::for_max(3600.0), TimeUnit::Minutes);
        assert_eq!(TimeUnit::for_max(3.0 * 3600.0), TimeUnit::Hours);
        let small: Vec<ChartPoint> = textbook(0..=4)
            .into_iter()
            .map(|p| ChartPoint {
                client_server: p.client_server / 100.0,
                p2p_bound: p.p2p_bound / 100.0,
                measured: p.measured.map(|m| m / 100.0),
                ..p
            })
            .collect();
        let svg = render_svg(
            &small,
            &ChartText {
                title: "t",
                reference: None,
            },
        )
        .expect("render");
        assert!(svg.contains("distribution time, seconds"));
        assert!(!svg.contains("F/u"));
    }

    #[test]
    fn large_swarms_use_log_axes_and_skip_failed_runs() {
        let mut points = textbook([0, 1, 10, 100, 1000]);
        points[2].measured = None;
        let svg = render_svg(&points, &text()).expect("render");
        assert!(svg.contains("N, peers (log scale)"));
        // N = 0 cannot be drawn on a log axis, N = 10 has no measurement: 3 circles.
        assert_eq!(svg.matches("<circle").count(), 3);
    }

    #[test]
    fn degenerate_inputs_still_render() {
        for points in [
            vec![],
            textbook([0]),
            textbook([7]),
            vec![ChartPoint {
                peers: 3,
                client_server: f64::NAN,
                p2p_bound: 1.0,
                measured: None,
            }],
        ] {
            let svg = render_svg(&points, &text()).expect("render");
            assert!(svg.contains(LEGEND_MEASURED));
        }
    }
}
