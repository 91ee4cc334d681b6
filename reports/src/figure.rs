//! Theory-vs-simulation figures, rendered with plotters to SVG (for the report) and PNG.
//!
//! Everything data-dependent (runs, bands, ranges, legend corner) is planned first,
//! independent of the backend, so SVG and PNG show exactly the same picture.

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;

use crate::ReportError;
use crate::table::{fmt_sig, io_err, sync_and_rename, temp_path, write_atomic};

/// Output size in pixels (both formats).
pub const SIZE: (u32, u32) = (1000, 640);

/// How a curve is drawn, which also says how much to trust it.
pub enum CurveKind {
    /// Exact theory: solid line.
    Theory,
    /// A bound: dashed line.
    Bound,
    /// Exact theory drawn solid in the colour of the figure's `i`-th empirical curve (0-based),
    /// pairing a theory line with its simulation when one figure compares several processes.
    TheoryFor(usize),
    /// Simulation: mean line with a shaded +-2 standard error band; points where
    /// `feasible[i]` is false are drawn as hollow grey circles and excluded from the
    /// line (a mean the ensemble cannot estimate).
    Empirical {
        stderr: Vec<f64>,
        feasible: Vec<bool>,
    },
}

pub struct Curve {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub kind: CurveKind,
}

pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub curves: Vec<Curve>,
}

/// Render to SVG and PNG, each written atomically (temp file + rename).
pub fn render(fig: &Figure, svg_path: &Path, png_path: &Path) -> Result<(), ReportError> {
    validate(fig)?;
    ensure_fonts()?;
    let plan = Plan::new(fig);

    // SVG into memory first: a drawing error then costs no file at all.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, fig, &plan)?;
        root.present().map_err(fig_err)?;
    }

    // The bitmap encoder picks the format from the extension, so the temp name ends in .png.
    let tmp = temp_path(png_path, ".png")?;
    let drawn = {
        let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
        draw(&root, fig, &plan).and_then(|()| root.present().map_err(fig_err))
        // Dropping the backend may still save the file on error; it is removed below.
    };
    if let Err(e) = drawn.and_then(|()| sync_and_rename(&tmp, png_path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }

    write_atomic(svg_path, |w| {
        w.write_all(svg.as_bytes()).map_err(io_err(svg_path))
    })
}

fn fig_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Figure(e.to_string())
}

/// Register DejaVu as "sans-serif" once: the machine has no system fonts.
fn ensure_fonts() -> Result<(), ReportError> {
    static FONTS: OnceLock<Result<(), String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let bad = |face: &str| format!("DejaVu Sans {face} is not a valid font");
            register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| bad("regular"))?;
            register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
                .map_err(|_| bad("bold"))
        })
        .clone()
        .map_err(ReportError::Figure)
}

fn validate(fig: &Figure) -> Result<(), ReportError> {
    for c in &fig.curves {
        let n = c.x.len();
        let mismatch = c.y.len() != n
            || matches!(&c.kind, CurveKind::Empirical { stderr, feasible }
                if stderr.len() != n || feasible.len() != n);
        if mismatch {
            return Err(ReportError::Invalid(format!(
                "curve {:?}: x, y (and stderr, feasible) must have equal lengths",
                c.label
            )));
        }
    }
    Ok(())
}

const THEORY_COLOURS: [RGBColor; 3] =
    [RGBColor(0, 0, 0), RGBColor(0, 0, 139), RGBColor(90, 90, 90)];
const BOUND_COLOURS: [RGBColor; 3] = [
    RGBColor(214, 39, 40),
    RGBColor(139, 0, 0),
    RGBColor(227, 119, 194),
];
const EMPIRICAL_COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const GREY: RGBColor = RGBColor(128, 128, 128);

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Solid,
    Dashed,
    Band,
}

/// One curve reduced to drawable pieces; non-drawable points are dropped and break runs.
struct Prepared {
    label: String,
    colour: RGBColor,
    style: Style,
    /// Line pieces (a skipped point splits the line instead of bridging it).
    runs: Vec<Vec<(f64, f64)>>,
    /// Band pieces as (x, low, high).
    bands: Vec<Vec<(f64, f64, f64)>>,
    /// Estimable empirical means.
    markers: Vec<(f64, f64)>,
    /// Means the ensemble cannot estimate.
    hollow: Vec<(f64, f64)>,
}

struct Plan {
    curves: Vec<Prepared>,
    x: Range<f64>,
    y: Range<f64>,
    legend: SeriesLabelPosition,
}

impl Plan {
    fn new(fig: &Figure) -> Self {
        let log = fig.log_y;
        let drawable = |x: f64, y: f64| x.is_finite() && y.is_finite() && (!log || y > 0.0);
        // Lower band edges at or below zero cannot be shown on a log axis: clip them a
        // decade below the smallest drawable value.
        let floor = fig
            .curves
            .iter()
            .flat_map(|c| c.x.iter().zip(&c.y))
            .filter(|&(&x, &y)| drawable(x, y))
            .map(|(_, &y)| y)
            .fold(f64::INFINITY, f64::min)
            / 10.0;

        let (mut n_theory, mut n_bound, mut n_emp) = (0, 0, 0);
        let mut curves = Vec::with_capacity(fig.curves.len());
        for c in &fig.curves {
            let (colour, style) = match c.kind {
                CurveKind::Theory => {
                    n_theory += 1;
                    (
                        THEORY_COLOURS[(n_theory - 1) % THEORY_COLOURS.len()],
                        Style::Solid,
                    )
                }
                CurveKind::Bound => {
                    n_bound += 1;
                    (
                        BOUND_COLOURS[(n_bound - 1) % BOUND_COLOURS.len()],
                        Style::Dashed,
                    )
                }
                CurveKind::TheoryFor(i) => {
                    (EMPIRICAL_COLOURS[i % EMPIRICAL_COLOURS.len()], Style::Solid)
                }
                CurveKind::Empirical { .. } => {
                    n_emp += 1;
                    (
                        EMPIRICAL_COLOURS[(n_emp - 1) % EMPIRICAL_COLOURS.len()],
                        Style::Band,
                    )
                }
            };
            let mut p = Prepared {
                label: c.label.clone(),
                colour,
                style,
                runs: vec![],
                bands: vec![],
                markers: vec![],
                hollow: vec![],
            };
            let (mut run, mut band) = (Vec::new(), Vec::new());
            for i in 0..c.x.len() {
                let (x, y) = (c.x[i], c.y[i]);
                let (on_line, band_point) = if !drawable(x, y) {
                    (false, None)
                } else {
                    match &c.kind {
                        CurveKind::Empirical { feasible, .. } if !feasible[i] => {
                            p.hollow.push((x, y));
                            (false, None)
                        }
                        CurveKind::Empirical { stderr, .. } => {
                            p.markers.push((x, y));
                            let se = stderr[i];
                            let edges = (se.is_finite() && se >= 0.0).then(|| {
                                let (lo, hi) = (y - 2.0 * se, y + 2.0 * se);
                                (if log { lo.max(floor) } else { lo }, hi)
                            });
                            (
                                true,
                                edges.filter(|(lo, hi)| lo.is_finite() && hi.is_finite()),
                            )
                        }
                        _ => (true, None),
                    }
                };
                if on_line {
                    run.push((x, y));
                } else if !run.is_empty() {
                    p.runs.push(std::mem::take(&mut run));
                }
                if let Some((lo, hi)) = band_point {
                    band.push((x, lo, hi));
                } else if !band.is_empty() {
                    p.bands.push(std::mem::take(&mut band));
                }
            }
            if !run.is_empty() {
                p.runs.push(run);
            }
            if !band.is_empty() {
                p.bands.push(band);
            }
            curves.push(p);
        }

        let points = || {
            curves.iter().flat_map(|p| {
                let lines = p.runs.iter().flatten().copied();
                let edges = p
                    .bands
                    .iter()
                    .flatten()
                    .flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
                lines.chain(edges).chain(p.hollow.iter().copied())
            })
        };
        let x = axis_range(points().map(|(x, _)| x), false, (0.0, 1.0));
        let y = axis_range(
            points().map(|(_, y)| y),
            log,
            if log { (1.0, 10.0) } else { (0.0, 1.0) },
        );

        // Put the legend in the corner with the fewest data points under the box it needs
        // (about 22 px per entry of a ~520 px plot area, 45% of the width); if every corner
        // has points there, widen the y-range on that side by the box's height.
        let t = |v: f64| if log { v.log10() } else { v };
        let (ty0, ty1) = (t(y.start), t(y.end));
        let entries = curves.len() + usize::from(curves.iter().any(|c| !c.hollow.is_empty()));
        let h = ((entries as f64 * 22.0 + 16.0) / 520.0).clamp(0.2, 0.8);
        let mut counts = [0usize; 4];
        for (px, py) in points() {
            let u = (px - x.start) / (x.end - x.start);
            let v = (t(py) - ty0) / (ty1 - ty0);
            let (right, left, upper, lower) = (u > 0.55, u < 0.45, v > 1.0 - h, v < h);
            counts[0] += usize::from(right && upper);
            counts[1] += usize::from(left && upper);
            counts[2] += usize::from(right && lower);
            counts[3] += usize::from(left && lower);
        }
        let best = (0..4).min_by_key(|&i| (counts[i], i)).unwrap_or(0);
        let y = if counts[best] > 0 && ty1 > ty0 {
            let grown = (ty1 - ty0) / (1.0 - h);
            let back = |v: f64| if log { 10f64.powf(v) } else { v };
            if best < 2 {
                y.start..back(ty0 + grown)
            } else {
                back(ty1 - grown)..y.end
            }
        } else {
            y
        };
        let legend = [
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::LowerLeft,
        ][best]
            .clone();
        Plan {
            curves,
            x,
            y,
            legend,
        }
    }
}

/// Range of the finite values with a 5% margin (in log space for a log axis); `empty` if none.
fn axis_range(values: impl Iterator<Item = f64>, log: bool, empty: (f64, f64)) -> Range<f64> {
    let t = |v: f64| if log { v.log10() } else { v };
    let inv = |v: f64| if log { 10f64.powf(v) } else { v };
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .map(t)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return empty.0..empty.1;
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        0.05 * span
    } else if log {
        0.5
    } else if lo != 0.0 {
        0.1 * lo.abs()
    } else {
        1.0
    };
    let (a, b) = (inv(lo - pad), inv(hi + pad));
    if a.is_finite() && b.is_finite() && a < b && (!log || a > 0.0) {
        a..b
    } else {
        empty.0..empty.1
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    plan: &Plan,
) -> Result<(), ReportError> {
    root.fill(&WHITE).map_err(fig_err)?;
    if fig.log_y {
        let y: LogCoord<f64> = (plan.y.clone()).log_scale().into();
        draw_chart(root, fig, plan, y)
    } else {
        draw_chart(root, fig, plan, RangedCoordf64::from(plan.y.clone()))
    }
}

fn draw_chart<DB, Y>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    plan: &Plan,
    y: Y,
) -> Result<(), ReportError>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&fig.title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(RangedCoordf64::from(plan.x.clone()), y)
        .map_err(fig_err)?;
    let tick = |v: &f64| fmt_sig(*v);
    // Log axes get a light line per minor tick, which clutters; keep only the major grid.
    let light = if fig.log_y {
        TRANSPARENT
    } else {
        BLACK.mix(0.05)
    };
    chart
        .configure_mesh()
        .light_line_style(light)
        .x_desc(fig.x_label.as_str())
        .y_desc(fig.y_label.as_str())
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(fig_err)?;

    // Bands underneath everything else.
    for p in &plan.curves {
        for band in &p.bands {
            let fill = p.colour.mix(0.2).filled();
            let outline = band
                .iter()
                .map(|&(x, _, hi)| (x, hi))
                .chain(band.iter().rev().map(|&(x, lo, _)| (x, lo)));
            if band.len() == 1 {
                let (x, lo, hi) = band[0];
                let bar =
                    PathElement::new(vec![(x, lo), (x, hi)], p.colour.mix(0.4).stroke_width(3));
                chart.draw_series(std::iter::once(bar)).map_err(fig_err)?;
            } else {
                let poly = Polygon::new(outline.collect::<Vec<_>>(), fill);
                chart.draw_series(std::iter::once(poly)).map_err(fig_err)?;
            }
        }
    }

    for p in &plan.curves {
        let colour = p.colour;
        let line = colour.stroke_width(2);
        // An empty series carries the legend entry, so every curve is listed even if
        // none of its points is drawable.
        let anno = chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
            .map_err(fig_err)?
            .label(p.label.as_str());
        match p.style {
            Style::Solid => {
                anno.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
            }
            Style::Dashed => {
                anno.legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, line)
                });
            }
            Style::Band => {
                anno.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + Rectangle::new([(0, -5), (24, 5)], colour.mix(0.2).filled())
                        + PathElement::new(vec![(0, 0), (24, 0)], line)
                        + Circle::new((12, 0), 3, colour.filled())
                });
            }
        }
        for run in &p.runs {
            match p.style {
                Style::Dashed => {
                    chart.draw_series(DashedLineSeries::new(run.iter().copied(), 8, 5, line))
                }
                _ => chart.draw_series(LineSeries::new(run.iter().copied(), line)),
            }
            .map_err(fig_err)?;
        }
        chart
            .draw_series(
                p.markers
                    .iter()
                    .map(|&pt| Circle::new(pt, 3, colour.filled())),
            )
            .map_err(fig_err)?;
    }

    let hollow_style = GREY.stroke_width(2);
    let hollow = plan.curves.iter().flat_map(|p| p.hollow.iter().copied());
    let anno = chart
        .draw_series(hollow.clone().map(|pt| Circle::new(pt, 5, hollow_style)))
        .map_err(fig_err)?;
    if hollow.clone().next().is_some() {
        anno.label("mean not MC-estimable")
            .legend(move |(x, y)| Circle::new((x + 12, y), 5, hollow_style));
    }

    if !plan.curves.is_empty() {
        chart
            .configure_series_labels()
            .position(plan.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(fig_err)?;
    }
    Ok(())
}

/// A density on a regular grid, drawn as contour lines in one panel of a [`PanelFigure`].
pub struct DensityPanel {
    pub title: String,
    /// Extent of the grid: node (i, j) sits at (x.start + i dx, y.start + j dy) with
    /// dx = (x.end - x.start) / (nx - 1), likewise dy.
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub nx: usize,
    pub ny: usize,
    /// Node values, `values[j * nx + i]` at node (i, j).
    pub values: Vec<f64>,
    /// Contour levels, drawn from light (first) to dark (last).
    pub levels: Vec<f64>,
    /// Points marked with a cross (e.g. component means).
    pub marks: Vec<(f64, f64)>,
}

/// Panels of contour plots in a grid of `columns`, each with its own axes (equal scale in x
/// and y, so circles stay round).
pub struct PanelFigure {
    pub title: String,
    /// One line under the title saying what the contours and marks are.
    pub subtitle: String,
    pub columns: usize,
    pub panels: Vec<DensityPanel>,
}

/// One panel's contour polylines in data coordinates, by level.
type PanelLines = Vec<Vec<Vec<(f64, f64)>>>;

/// Width of a panel figure and height of one row of panels (pixels).
const PANEL_WIDTH: u32 = 1200;
const PANEL_ROW: u32 = 300;
const PANEL_HEADER: u32 = 70;
const PANEL_MARGIN: u32 = 8;
const PANEL_X_AREA: u32 = 28;
const PANEL_Y_AREA: u32 = 64;

/// Contour polylines of `values` (an `nx` x `ny` grid, row j at `j * nx`) at `level`, in grid
/// coordinates (node (i, j) at (i, j)), by marching squares: each cell's crossed edges are joined
/// by segments (a saddle is split by the cell's mean value), and segments sharing an edge are
/// chained into polylines (closed ones end at their first point). Values that are NaN count as
/// below the level.
pub fn contour_lines(nx: usize, ny: usize, values: &[f64], level: f64) -> Vec<Vec<(f64, f64)>> {
    // An edge: (i, j, horizontal) joins node (i, j) to (i + 1, j), else to (i, j + 1).
    type Edge = (usize, usize, bool);
    if nx < 2 || ny < 2 || values.len() != nx * ny {
        return Vec::new();
    }
    let v = |i: usize, j: usize| values[j * nx + i];
    let above = |i: usize, j: usize| v(i, j) > level;
    let point = |(i, j, h): Edge| -> (f64, f64) {
        let (a, b) = if h {
            (v(i, j), v(i + 1, j))
        } else {
            (v(i, j), v(i, j + 1))
        };
        let t = ((level - a) / (b - a)).clamp(0.0, 1.0);
        let t = if t.is_finite() { t } else { 0.5 };
        if h {
            (i as f64 + t, j as f64)
        } else {
            (i as f64, j as f64 + t)
        }
    };
    let mut segments: Vec<(Edge, Edge)> = Vec::new();
    for j in 0..ny - 1 {
        for i in 0..nx - 1 {
            let (a, b, c, d) = (
                above(i, j),
                above(i + 1, j),
                above(i + 1, j + 1),
                above(i, j + 1),
            );
            let bottom = (i, j, true);
            let right = (i + 1, j, false);
            let top = (i, j + 1, true);
            let left = (i, j, false);
            let crossed: Vec<Edge> = [
                (a != b, bottom),
                (b != c, right),
                (c != d, top),
                (d != a, left),
            ]
            .into_iter()
            .filter_map(|(x, e)| x.then_some(e))
            .collect();
            match crossed.len() {
                2 => segments.push((crossed[0], crossed[1])),
                4 => {
                    let centre = (v(i, j) + v(i + 1, j) + v(i + 1, j + 1) + v(i, j + 1)) / 4.0;
                    if (centre > level) == a {
                        // a and c are joined through the centre: cut off b and d.
                        segments.push((bottom, right));
                        segments.push((top, left));
                    } else {
                        segments.push((bottom, left));
                        segments.push((right, top));
                    }
                }
                _ => {}
            }
        }
    }
    let mut by_edge: std::collections::HashMap<Edge, Vec<usize>> = Default::default();
    for (s, &(e0, e1)) in segments.iter().enumerate() {
        by_edge.entry(e0).or_default().push(s);
        by_edge.entry(e1).or_default().push(s);
    }
    let mut used = vec![false; segments.len()];
    let next = |from: Edge, used: &mut Vec<bool>| -> Option<Edge> {
        let s = *by_edge.get(&from)?.iter().find(|&&s| !used[s])?;
        used[s] = true;
        let (e0, e1) = segments[s];
        Some(if e0 == from { e1 } else { e0 })
    };
    let mut lines = Vec::new();
    for s in 0..segments.len() {
        if used[s] {
            continue;
        }
        used[s] = true;
        let (e0, e1) = segments[s];
        let mut forward = vec![e0, e1];
        while let Some(e) = next(*forward.last().expect("non-empty"), &mut used) {
            forward.push(e);
        }
        let mut backward = Vec::new();
        let mut tail = e0;
        while let Some(e) = next(tail, &mut used) {
            backward.push(e);
            tail = e;
        }
        backward.reverse();
        backward.extend(forward);
        lines.push(backward.into_iter().map(point).collect());
    }
    lines
}

fn validate_panels(fig: &PanelFigure) -> Result<(), ReportError> {
    if fig.columns == 0 || fig.panels.is_empty() {
        return Err(ReportError::Invalid(
            "a panel figure needs at least one panel and one column".into(),
        ));
    }
    for p in &fig.panels {
        let ok_range = |r: &Range<f64>| r.start.is_finite() && r.end.is_finite() && r.start < r.end;
        if p.nx < 2
            || p.ny < 2
            || p.values.len() != p.nx * p.ny
            || !ok_range(&p.x)
            || !ok_range(&p.y)
        {
            return Err(ReportError::Invalid(format!(
                "panel {:?}: needs a grid of at least 2 x 2 nodes over finite, non-empty ranges",
                p.title
            )));
        }
    }
    Ok(())
}

/// Render a panel figure to SVG and PNG, each written atomically.
pub fn render_panels(
    fig: &PanelFigure,
    svg_path: &Path,
    png_path: &Path,
) -> Result<(), ReportError> {
    validate_panels(fig)?;
    ensure_fonts()?;
    let rows = fig.panels.len().div_ceil(fig.columns) as u32;
    let size = (PANEL_WIDTH, PANEL_HEADER + rows * PANEL_ROW);
    let lines: Vec<PanelLines> = fig
        .panels
        .iter()
        .map(|p| {
            let dx = (p.x.end - p.x.start) / (p.nx - 1) as f64;
            let dy = (p.y.end - p.y.start) / (p.ny - 1) as f64;
            p.levels
                .iter()
                .map(|&l| {
                    contour_lines(p.nx, p.ny, &p.values, l)
                        .into_iter()
                        .map(|line| {
                            line.into_iter()
                                .map(|(i, j)| (p.x.start + i * dx, p.y.start + j * dy))
                                .collect()
                        })
                        .collect()
                })
                .collect()
        })
        .collect();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_panels(&root, fig, &lines)?;
        root.present().map_err(fig_err)?;
    }
    let tmp = temp_path(png_path, ".png")?;
    let drawn = {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        draw_panels(&root, fig, &lines).and_then(|()| root.present().map_err(fig_err))
    };
    if let Err(e) = drawn.and_then(|()| sync_and_rename(&tmp, png_path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    write_atomic(svg_path, |w| {
        w.write_all(svg.as_bytes()).map_err(io_err(svg_path))
    })
}

/// Colour of contour level `k` of `n`: light blue (outer) to dark blue (inner).
fn level_colour(k: usize, n: usize) -> RGBColor {
    let t = if n > 1 {
        k as f64 / (n - 1) as f64
    } else {
        1.0
    };
    let mix = |a: u8, b: u8| (f64::from(a) + t * (f64::from(b) - f64::from(a))).round() as u8;
    RGBColor(mix(158, 8), mix(202, 48), mix(225, 107))
}

/// `range` widened about its centre so that it spans at least `span`.
fn widen(range: &Range<f64>, span: f64) -> Range<f64> {
    let have = range.end - range.start;
    if have >= span {
        return range.clone();
    }
    let pad = (span - have) / 2.0;
    range.start - pad..range.end + pad
}

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &PanelFigure,
    lines: &[PanelLines],
) -> Result<(), ReportError> {
    root.fill(&WHITE).map_err(fig_err)?;
    let (header, body) = root.split_vertically(PANEL_HEADER);
    header
        .draw(&Text::new(
            fig.title.as_str(),
            (15, 8),
            ("sans-serif", 24).into_font(),
        ))
        .map_err(fig_err)?;
    header
        .draw(&Text::new(
            fig.subtitle.as_str(),
            (15, 42),
            ("sans-serif", 14).into_font().color(&BLACK.mix(0.75)),
        ))
        .map_err(fig_err)?;
    let rows = fig.panels.len().div_ceil(fig.columns);
    let areas = body.split_evenly((rows, fig.columns));
    let tick = |v: &f64| fmt_sig(*v);
    for ((p, area), levels) in fig.panels.iter().zip(&areas).zip(lines) {
        let area = area
            .titled(p.title.as_str(), ("sans-serif", 14))
            .map_err(fig_err)?;
        // Equal scale: widen the range whose units per pixel are fewer.
        let (w, h) = area.dim_in_pixel();
        let pw = f64::from(w.saturating_sub(PANEL_Y_AREA + 2 * PANEL_MARGIN).max(1));
        let ph = f64::from(h.saturating_sub(PANEL_X_AREA + 2 * PANEL_MARGIN).max(1));
        let per_pixel = ((p.x.end - p.x.start) / pw).max((p.y.end - p.y.start) / ph);
        let (x, y) = (widen(&p.x, per_pixel * pw), widen(&p.y, per_pixel * ph));
        let mut chart = ChartBuilder::on(&area)
            .margin(PANEL_MARGIN)
            .x_label_area_size(PANEL_X_AREA)
            .y_label_area_size(PANEL_Y_AREA)
            .build_cartesian_2d(x, y)
            .map_err(fig_err)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(fig_err)?;
        for (k, polylines) in levels.iter().enumerate() {
            let style = level_colour(k, levels.len()).stroke_width(2);
            chart
                .draw_series(polylines.iter().map(|l| PathElement::new(l.clone(), style)))
                .map_err(fig_err)?;
        }
        chart
            .draw_series(
                p.marks
                    .iter()
                    .map(|&m| Cross::new(m, 5, RGBColor(214, 39, 40).stroke_width(2))),
            )
            .map_err(fig_err)?;
    }
    Ok(())
}

/// The mean curve of a metric with its band.
pub fn band(label: &str, values: &[collapse_sim::stats::MeanError]) -> Curve {
    Curve {
        label: label.into(),
        x: (0..values.len()).map(|g| g as f64).collect(),
        y: values.iter().map(|m| m.mean).collect(),
        kind: CurveKind::Empirical {
            stderr: values.iter().map(|m| m.stderr).collect(),
            feasible: vec![true; values.len()],
        },
    }
}

/// A horizontal reference line over the generations.
pub fn level(label: String, value: f64, generations: usize) -> Curve {
    Curve {
        label,
        x: vec![0.0, generations.saturating_sub(1) as f64],
        y: vec![value; 2],
        kind: CurveKind::Bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "collapse-reports-figure-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn sample(log_y: bool) -> Figure {
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        let theory: Vec<f64> = x.iter().map(|g| 0.9f64.powf(*g)).collect();
        let mut emp: Vec<f64> = theory.iter().map(|t| t * 1.02).collect();
        emp[3] = f64::NAN;
        emp[5] = -0.1; // skipped on a log axis
        let mut stderr = vec![0.03; 12];
        stderr[0] = 0.6; // lower band edge below zero: clipped on a log axis
        stderr[7] = f64::NAN;
        let mut feasible = vec![true; 12];
        feasible[10] = false;
        feasible[11] = false;
        Figure {
            title: "Variance <collapse> & bound".into(),
            x_label: "generation".into(),
            y_label: "E[σ²]".into(),
            log_y,
            curves: vec![
                Curve {
                    label: "theory".into(),
                    x: x.clone(),
                    y: theory.clone(),
                    kind: CurveKind::Theory,
                },
                Curve {
                    label: "Jensen bound".into(),
                    x: x.clone(),
                    y: theory.iter().map(|t| t * 1.5).collect(),
                    kind: CurveKind::Bound,
                },
                Curve {
                    label: "simulation".into(),
                    x,
                    y: emp,
                    kind: CurveKind::Empirical { stderr, feasible },
                },
            ],
        }
    }

    fn check_outputs(dir: &Path) {
        let svg = std::fs::read_to_string(dir.join("fig.svg")).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("Variance &lt;collapse&gt; &amp; bound"),
            "title missing"
        );
        assert!(svg.contains("Jensen bound"));
        let png = std::fs::read(dir.join("fig.png")).unwrap();
        assert!(png.len() > PNG_MAGIC.len());
        assert_eq!(png[..8], PNG_MAGIC);
        assert_eq!(entries(dir), ["fig.png", "fig.svg"]);
    }

    #[test]
    fn renders_linear_and_log() {
        for log_y in [false, true] {
            let dir = scratch(if log_y { "log" } else { "linear" });
            render(&sample(log_y), &dir.join("fig.svg"), &dir.join("fig.png")).unwrap();
            check_outputs(&dir);
            // Overwriting an existing pair works and still leaves no temporaries.
            render(&sample(log_y), &dir.join("fig.svg"), &dir.join("fig.png")).unwrap();
            check_outputs(&dir);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn log_plan_skips_nonpositive_and_clips_bands() {
        let plan = Plan::new(&sample(true));
        assert!(plan.y.start > 0.0 && plan.y.end > plan.y.start);
        let emp = &plan.curves[2];
        assert_eq!(emp.hollow.len(), 2);
        assert!(emp.markers.iter().all(|&(_, y)| y > 0.0));
        assert!(
            emp.bands
                .iter()
                .flatten()
                .all(|&(_, lo, hi)| lo > 0.0 && hi > lo)
        );
        // NaN at 3, non-positive at 5, infeasible from 10 split the line in three.
        assert_eq!(emp.runs.len(), 3);
    }

    #[test]
    fn paired_theory_takes_its_simulation_colour() {
        let mut fig = sample(false);
        for i in 0..2 {
            fig.curves.push(Curve {
                label: format!("theory {i}"),
                x: vec![0.0, 1.0],
                y: vec![1.0, 0.5],
                kind: CurveKind::TheoryFor(i),
            });
        }
        let plan = Plan::new(&fig);
        assert!(plan.curves[3].colour == plan.curves[2].colour);
        assert!(plan.curves[4].colour == EMPIRICAL_COLOURS[1]);
        assert!(plan.curves[3].style == Style::Solid && plan.curves[3].runs.len() == 1);
    }

    #[test]
    fn all_nan_never_panics() {
        for log_y in [false, true] {
            let dir = scratch(if log_y { "nan-log" } else { "nan-linear" });
            let nan = vec![f64::NAN; 4];
            let fig = Figure {
                title: "empty".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                log_y,
                curves: vec![
                    Curve {
                        label: "t".into(),
                        x: nan.clone(),
                        y: nan.clone(),
                        kind: CurveKind::Theory,
                    },
                    Curve {
                        label: "b".into(),
                        x: nan.clone(),
                        y: nan.clone(),
                        kind: CurveKind::Bound,
                    },
                    Curve {
                        label: "e".into(),
                        x: nan.clone(),
                        y: nan.clone(),
                        kind: CurveKind::Empirical {
                            stderr: nan.clone(),
                            feasible: vec![false; 4],
                        },
                    },
                ],
            };
            match render(&fig, &dir.join("fig.svg"), &dir.join("fig.png")) {
                Ok(()) => assert_eq!(entries(&dir), ["fig.png", "fig.svg"]),
                Err(_) => assert!(entries(&dir).is_empty()),
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn bad_input_and_bad_directory_leave_nothing() {
        let dir = scratch("bad");
        let mut fig = sample(false);
        fig.curves[0].y.pop();
        let err = render(&fig, &dir.join("fig.svg"), &dir.join("fig.png"));
        assert!(matches!(err, Err(ReportError::Invalid(_))));
        let gone = dir.join("missing");
        assert!(render(&sample(false), &gone.join("fig.svg"), &gone.join("fig.png")).is_err());
        assert!(!gone.exists());
        assert!(entries(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A radial bump's contour at a level is one closed loop at the level's radius (to the
    /// grid's interpolation error), and two bumps give two loops.
    #[test]
    fn contours_of_bumps_are_closed_circles() {
        let n = 61;
        let at = |i: usize| -3.0 + 6.0 * i as f64 / (n - 1) as f64;
        let grid = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
            (0..n * n).map(|k| f(at(k % n), at(k / n))).collect()
        };
        let one = grid(&|x, y| (-(x * x + y * y) / 2.0).exp());
        let level = (-0.5f64).exp(); // radius 1
        let lines = contour_lines(n, n, &one, level);
        assert_eq!(lines.len(), 1);
        let loop_ = &lines[0];
        assert_eq!(loop_.first(), loop_.last(), "closed");
        assert!(loop_.len() > 20);
        for &(i, j) in loop_ {
            let r = (at(0) + i * 0.1).hypot(at(0) + j * 0.1);
            assert!((r - 1.0).abs() < 0.01, "radius {r}");
        }
        let two = grid(&|x, y| {
            (-((x - 1.5).powi(2) + y * y) / 0.5).exp() + (-((x + 1.5).powi(2) + y * y) / 0.5).exp()
        });
        assert_eq!(contour_lines(n, n, &two, 0.5).len(), 2);
        assert!(contour_lines(n, n, &two, 2.0).is_empty());
        assert!(contour_lines(n, n, &two[1..], 0.5).is_empty());
    }

    #[test]
    fn renders_panels() {
        let dir = scratch("panels");
        let n = 31;
        let values: Vec<f64> = (0..n * n)
            .map(|k| {
                let (x, y) = ((k % n) as f64 / 15.0 - 1.0, (k / n) as f64 / 15.0 - 1.0);
                (-(x * x + 4.0 * y * y)).exp()
            })
            .collect();
        let panel = |title: &str| DensityPanel {
            title: title.into(),
            x: -1.0..1.0,
            y: -1.0..1.0,
            nx: n,
            ny: n,
            values: values.clone(),
            levels: vec![0.3, 0.6, 0.9],
            marks: vec![(0.0, 0.0)],
        };
        let fig = PanelFigure {
            title: "panels".into(),
            subtitle: "three levels".into(),
            columns: 2,
            panels: vec![panel("a"), panel("b"), panel("c")],
        };
        render_panels(&fig, &dir.join("fig.svg"), &dir.join("fig.png")).unwrap();
        assert_eq!(entries(&dir), ["fig.png", "fig.svg"]);
        let png = std::fs::read(dir.join("fig.png")).unwrap();
        assert_eq!(png[..8], PNG_MAGIC);
        let empty = PanelFigure {
            panels: vec![],
            ..fig
        };
        assert!(render_panels(&empty, &dir.join("e.svg"), &dir.join("e.png")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
