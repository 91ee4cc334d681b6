//! Sample-size schedules: the phase diagram of the unbiased 1-D Gaussian recursion over the
//! power P of M_i = ceil(M (i+1)^P) (E[W2^2] stays bounded iff sum 1/M_i converges, i.e. P > 1;
//! proofs/schedules.md), and a table of every schedule kind: bounded or not, the limit with its
//! enclosure where it is, the growth rate where it is not, with an ensemble at a fixed large n on
//! top of the exact theory.

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure};
use crate::report::Scale;
use crate::section::{Block, Section, TextTable, render_figures};
use crate::table::{ComparisonRow, comparison_frame, fmt_sig, write_frame};
use collapse_analysis::gaussian::{Feasibility, W2Limit, theory_at_precision, w2_limit};
use collapse_analysis::schedule::ScheduleKind;
use collapse_analysis::{Estimator, GaussianSpec, Schedule};
use collapse_sim::gaussian::{EnsembleConfig, GenerationStats, Method, simulate};
use polars::prelude::*;
use std::path::Path;
use std::time::Instant;

/// Working precision of the theory (bits).
const PRECISION: u32 = 128;
/// Terms of sum 1/M_i summed exactly in the limit enclosure (the tail is bounded).
const LIMIT_TERMS: u64 = 4096;
/// The power grid: P = 0, 0.25, ..., 2.
pub const POWERS: [f64; 9] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0];

/// (M, N, R) of a scale.
fn sizes(scale: Scale) -> (u64, u64, u64) {
    match scale {
        Scale::Smoke => (20, 100, 2_000),
        Scale::Default => (100, 1_000, 10_000),
        Scale::Paper => (100, 1_000, 100_000),
    }
}

/// How E[W2^2_n] behaves as n -> infinity (unbiased estimator, sigma = 1): bounded, or the
/// leading term of its growth, sigma^2 S_n with S_n = sum_{i<n} 1/M_i (E[W2^2_n] = sigma^2 (S_n
/// + 2 - 2 prod e_i), and prod e_i -> 0 when S_n diverges: proofs/schedules.md, Claim 1.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    Bounded,
    /// ~ n / L (constant M = L, geometric:1, the last size of a list).
    Linear {
        size: f64,
    },
    /// ~ ln n / M (linear, power:1).
    Logarithmic {
        base: f64,
    },
    /// ~ n^(1-P) / ((1-P) M), 0 < P < 1.
    Power {
        power: f64,
        base: f64,
    },
}

impl Growth {
    pub fn of(schedule: &Schedule) -> Growth {
        let m = schedule.base as f64;
        match &schedule.kind {
            _ if schedule.is_summable() => Growth::Bounded,
            ScheduleKind::Constant | ScheduleKind::Geometric(_) => Growth::Linear { size: m },
            ScheduleKind::Linear => Growth::Logarithmic { base: m },
            ScheduleKind::Power(p) if *p == 0.0 => Growth::Linear { size: m },
            ScheduleKind::Power(p) if *p == 1.0 => Growth::Logarithmic { base: m },
            ScheduleKind::Power(p) => Growth::Power { power: *p, base: m },
            ScheduleKind::List(v) => Growth::Linear {
                size: *v.last().expect("a list is not empty") as f64,
            },
        }
    }

    /// The leading term at generation n (None when bounded).
    pub fn leading(&self, n: u64) -> Option<f64> {
        let n = n as f64;
        match *self {
            Growth::Bounded => None,
            Growth::Linear { size } => Some(n / size),
            Growth::Logarithmic { base } => Some(n.ln() / base),
            Growth::Power { power, base } => Some(n.powf(1.0 - power) / ((1.0 - power) * base)),
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            Growth::Bounded => "bounded".into(),
            Growth::Linear { size } => format!("linear: ~ n / {}", fmt_sig(size)),
            Growth::Logarithmic { base } => format!("logarithmic: ~ ln n / {}", fmt_sig(base)),
            Growth::Power { power, base } => format!(
                "~ n^{} / ({} * {})",
                fmt_sig(1.0 - power),
                fmt_sig(1.0 - power),
                fmt_sig(base)
            ),
        }
    }
}

/// One schedule: exact theory at generation N, the limit (or growth), and an ensemble.
pub struct SchedulePoint {
    pub schedule: Schedule,
    /// The grid's P (None for the schedule-kind table).
    pub power: Option<f64>,
    /// Generations run (N, or fewer where the sizes would exceed the largest sample size).
    pub generations: u64,
    pub limit: W2Limit,
    pub growth: Growth,
    /// E[W2^2_N], sigma^2 S_N, E[ln sigma_N^2].
    pub theory_w2_sq: f64,
    pub theory_mean_sq_error: f64,
    pub theory_log_variance: f64,
    pub feasibility: Feasibility,
    pub chains: u64,
    pub sim: GenerationStats,
    pub seconds: f64,
}

impl SchedulePoint {
    fn w2_feasible(&self) -> bool {
        self.feasibility.w2_sq_ok(self.chains)
    }
    fn mean_sq_error_feasible(&self) -> bool {
        self.feasibility.mean_sq_error_ok(self.chains)
    }
    /// The limit's midpoint and enclosure as f64.
    fn limit_f64(&self) -> Option<(f64, f64, f64)> {
        self.limit
            .limit
            .as_ref()
            .map(|b| (b.to_f64(), b.lower().to_f64(), b.upper().to_f64()))
    }
    fn limit_text(&self) -> String {
        match &self.limit.limit {
            Some(b) => {
                let digits = b.certified_digits().clamp(3, 10);
                let (lo, hi) = b.to_decimal_bounds(digits + 2);
                format!("{} in [{lo}, {hi}]", b.to_decimal(digits))
            }
            None => "—".into(),
        }
    }
}

/// The largest n <= `want` whose sizes M_0..M_{n-1} are all valid (geometric schedules leave
/// the range of sample sizes after a few hundred generations).
fn runnable_generations(schedule: &Schedule, want: u64) -> u64 {
    (0..want)
        .find(|&i| schedule.size(i).is_err())
        .unwrap_or(want)
}

/// Theory at generation N, the limit, and a `sufficient` ensemble of R chains.
pub fn run_point(
    schedule: Schedule,
    power: Option<f64>,
    generations: u64,
    chains: u64,
    seed: u64,
) -> Result<SchedulePoint, ReportError> {
    let start = Instant::now();
    let n = runnable_generations(&schedule, generations);
    let spec = GaussianSpec::new(schedule.clone(), Estimator::Unbiased, 1.0, n)?;
    let theory = theory_at_precision(&spec, PRECISION);
    let last = theory.rows.last().expect("N >= 1");
    let limit = w2_limit(&schedule, Estimator::Unbiased, 1.0, LIMIT_TERMS, PRECISION)?;
    let mut config = EnsembleConfig::new(chains, seed, Method::Sufficient);
    config.progress = true;
    let run = simulate(&spec, &config)?;
    let sim = run.rows.last().expect("N >= 1").clone();
    Ok(SchedulePoint {
        growth: Growth::of(&schedule),
        schedule,
        power,
        generations: n,
        limit,
        theory_w2_sq: last.expected_w2_sq.to_f64(),
        theory_mean_sq_error: last.mean_sq_error.to_f64(),
        theory_log_variance: last.expected_log_variance.to_f64(),
        feasibility: last.feasibility,
        chains,
        sim,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Long-form rows of one point (experiment `schedules-power` or `schedules-kinds`).
pub fn rows(experiment: &str, p: &SchedulePoint, seed: u64) -> Vec<ComparisonRow> {
    let row = |quantity: &str,
               theory: Option<f64>,
               empirical: f64,
               stderr: f64,
               feasible: bool,
               compared: bool| {
        let z = match theory {
            Some(t) if compared && feasible && stderr > 0.0 && stderr.is_finite() => {
                Some((empirical - t) / stderr)
            }
            _ => None,
        };
        ComparisonRow {
            experiment: experiment.to_string(),
            quantity: quantity.to_string(),
            generation: p.generations,
            theory,
            empirical,
            stderr,
            z,
            mc_feasible: feasible,
            method: Method::Sufficient.name().to_string(),
            estimator: Estimator::Unbiased.name().to_string(),
            schedule: p.schedule.label(),
            samples: p.schedule.base,
            chains: p.chains,
            seed,
        }
    };
    let s = &p.sim;
    let w2_ok = p.w2_feasible();
    let mut out = vec![
        row(
            "w2_sq",
            Some(p.theory_w2_sq),
            s.w2_sq.mean,
            s.w2_sq.stderr,
            w2_ok,
            true,
        ),
        row(
            "mean_sq_error",
            Some(p.theory_mean_sq_error),
            s.mean_sq_error.mean,
            s.mean_sq_error.stderr,
            p.mean_sq_error_feasible(),
            true,
        ),
        row(
            "log_variance",
            Some(p.theory_log_variance),
            s.log_variance.mean,
            s.log_variance.stderr,
            true,
            true,
        ),
        row(
            "median_w2_sq",
            None,
            s.w2_sq_quartiles[1],
            f64::NAN,
            true,
            false,
        ),
    ];
    if let Some((mid, lo, hi)) = p.limit_f64() {
        // The limit as n -> infinity beside the ensemble at N: shown, never z-scored.
        for (q, v) in [
            ("w2_sq_limit", mid),
            ("w2_sq_limit_lower", lo),
            ("w2_sq_limit_upper", hi),
        ] {
            out.push(row(q, Some(v), s.w2_sq.mean, s.w2_sq.stderr, w2_ok, false));
        }
    }
    if let Some(lead) = p.growth.leading(p.generations) {
        out.push(row(
            "w2_sq_growth_leading_term",
            Some(lead),
            s.w2_sq.mean,
            s.w2_sq.stderr,
            w2_ok,
            false,
        ));
    }
    out
}

/// The phase diagram in wide form: one row per P.
pub fn phase_frame(points: &[SchedulePoint]) -> Result<DataFrame, ReportError> {
    let f = |g: &dyn Fn(&SchedulePoint) -> f64| points.iter().map(g).collect::<Vec<f64>>();
    let o = |g: &dyn Fn(&SchedulePoint) -> Option<f64>| {
        points.iter().map(g).collect::<Vec<Option<f64>>>()
    };
    let u = |g: &dyn Fn(&SchedulePoint) -> u64| points.iter().map(g).collect::<Vec<u64>>();
    let b = |g: &dyn Fn(&SchedulePoint) -> bool| points.iter().map(g).collect::<Vec<bool>>();
    let s = |g: &dyn Fn(&SchedulePoint) -> String| points.iter().map(g).collect::<Vec<String>>();
    let columns = vec![
        Column::new("power".into(), o(&|p| p.power)),
        Column::new("schedule".into(), s(&|p| p.schedule.label())),
        Column::new("samples".into(), u(&|p| p.schedule.base)),
        Column::new("generation".into(), u(&|p| p.generations)),
        Column::new("chains".into(), u(&|p| p.chains)),
        Column::new("bounded".into(), b(&|p| p.limit.bounded)),
        Column::new(
            "sum_inverse_sizes".into(),
            o(&|p| p.limit.sum_inverse_sizes.as_ref().map(|b| b.to_f64())),
        ),
        Column::new("limit_w2_sq".into(), o(&|p| p.limit_f64().map(|l| l.0))),
        Column::new(
            "limit_w2_sq_lower".into(),
            o(&|p| p.limit_f64().map(|l| l.1)),
        ),
        Column::new(
            "limit_w2_sq_upper".into(),
            o(&|p| p.limit_f64().map(|l| l.2)),
        ),
        Column::new("growth".into(), s(&|p| p.growth.describe())),
        Column::new(
            "growth_leading_term".into(),
            o(&|p| p.growth.leading(p.generations)),
        ),
        Column::new("theory_w2_sq".into(), f(&|p| p.theory_w2_sq)),
        Column::new("empirical_w2_sq".into(), f(&|p| p.sim.w2_sq.mean)),
        Column::new("stderr_w2_sq".into(), f(&|p| p.sim.w2_sq.stderr)),
        Column::new("w2_sq_mc_feasible".into(), b(&|p| p.w2_feasible())),
        Column::new("median_w2_sq".into(), f(&|p| p.sim.w2_sq_quartiles[1])),
        Column::new(
            "theory_mean_sq_error".into(),
            f(&|p| p.theory_mean_sq_error),
        ),
        Column::new(
            "empirical_mean_sq_error".into(),
            f(&|p| p.sim.mean_sq_error.mean),
        ),
        Column::new(
            "stderr_mean_sq_error".into(),
            f(&|p| p.sim.mean_sq_error.stderr),
        ),
        Column::new(
            "mean_sq_error_mc_feasible".into(),
            b(&|p| p.mean_sq_error_feasible()),
        ),
    ];
    Ok(DataFrame::new(points.len(), columns)?)
}

/// The phase diagram: E[W2^2] (its limit where bounded, its value at N otherwise) against P,
/// and E[(mu_N - mu)^2] (the lower bound, estimable where E[W2^2] is not) against P.
pub fn phase_figures(points: &[SchedulePoint], m: u64, n: u64) -> Vec<(String, Figure)> {
    let x: Vec<f64> = points.iter().map(|p| p.power.unwrap_or(f64::NAN)).collect();
    let pick = |g: &dyn Fn(&SchedulePoint) -> f64| points.iter().map(g).collect::<Vec<f64>>();
    let limit = |i: usize| {
        pick(&|p| {
            p.limit_f64().map_or(f64::NAN, |l| match i {
                0 => l.0,
                1 => l.1,
                _ => l.2,
            })
        })
    };
    let chains = points.first().map_or(0, |p| p.chains);
    let emp = |label: &str, y: Vec<f64>, se: Vec<f64>, feasible: Vec<bool>| Curve {
        label: label.into(),
        x: x.clone(),
        y,
        kind: CurveKind::Empirical {
            stderr: se
                .iter()
                .map(|s| if s.is_finite() { *s } else { 0.0 })
                .collect(),
            feasible,
        },
    };
    // The phase boundary P = 1 as a vertical line across the values shown.
    let values: Vec<f64> = points
        .iter()
        .flat_map(|p| {
            [
                p.theory_w2_sq,
                p.sim.w2_sq_quartiles[1],
                p.theory_mean_sq_error,
            ]
        })
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let boundary = Curve {
        label: "P = 1: sum 1/M_i converges iff P > 1".into(),
        x: vec![1.0, 1.0],
        y: vec![lo, hi],
        kind: CurveKind::Theory,
    };
    let phase = Figure {
        title: format!(
            "Phase diagram: E[W2^2] under M_i = ceil({m} (i+1)^P), unbiased, n = {n}, {chains} chains"
        ),
        x_label: "power P".into(),
        y_label: "E[W2^2] (its limit where bounded)".into(),
        log_y: true,
        curves: vec![
            Curve {
                label: format!("theory E[W2^2_n], n = {n}"),
                x: x.clone(),
                y: pick(&|p| p.theory_w2_sq),
                kind: CurveKind::Theory,
            },
            Curve {
                label: "limit n -> inf (P > 1)".into(),
                x: x.clone(),
                y: limit(0),
                kind: CurveKind::Theory,
            },
            boundary,
            Curve {
                label: "limit enclosure: lower".into(),
                x: x.clone(),
                y: limit(1),
                kind: CurveKind::Bound,
            },
            Curve {
                label: "limit enclosure: upper".into(),
                x: x.clone(),
                y: limit(2),
                kind: CurveKind::Bound,
            },
            Curve {
                label: format!(
                    "divergence (P <= 1): n^(1-P)/((1-P) M); ln n / M at P = 1; n = {n}"
                ),
                x: x.clone(),
                y: pick(&|p| p.growth.leading(p.generations).unwrap_or(f64::NAN)),
                kind: CurveKind::Bound,
            },
            emp(
                &format!("ensemble mean W2^2_n (hollow: not estimable with {chains} chains)"),
                pick(&|p| p.sim.w2_sq.mean),
                pick(&|p| p.sim.w2_sq.stderr),
                points.iter().map(SchedulePoint::w2_feasible).collect(),
            ),
            emp(
                "ensemble median W2^2_n",
                pick(&|p| p.sim.w2_sq_quartiles[1]),
                vec![0.0; points.len()],
                vec![true; points.len()],
            ),
        ],
    };
    let mse = Figure {
        title: format!(
            "E[(mu_n - mu)^2] against P: M_i = ceil({m} (i+1)^P), n = {n}, {chains} chains"
        ),
        x_label: "power P".into(),
        y_label: "E[(mu_n - mu)^2]".into(),
        log_y: true,
        curves: vec![
            Curve {
                label: format!("theory sigma^2 sum_(i<n) 1/M_i, n = {n}"),
                x: x.clone(),
                y: pick(&|p| p.theory_mean_sq_error),
                kind: CurveKind::Theory,
            },
            Curve {
                label: "limit sigma^2 sum_i 1/M_i (P > 1)".into(),
                x: x.clone(),
                y: pick(&|p| {
                    p.limit
                        .sum_inverse_sizes
                        .as_ref()
                        .map_or(f64::NAN, |b| b.to_f64())
                }),
                kind: CurveKind::Bound,
            },
            emp(
                &format!("ensemble mean (hollow: not estimable with {chains} chains)"),
                pick(&|p| p.sim.mean_sq_error.mean),
                pick(&|p| p.sim.mean_sq_error.stderr),
                points
                    .iter()
                    .map(SchedulePoint::mean_sq_error_feasible)
                    .collect(),
            ),
        ],
    };
    vec![
        ("schedules-phase-w2_sq".to_string(), phase),
        ("schedules-phase-mean_sq_error".to_string(), mse),
    ]
}

/// The table rows of points: schedule, first sizes, bounded, limit or growth, theory and
/// simulation at N.
fn text_table(points: &[SchedulePoint]) -> TextTable {
    let header = [
        "schedule",
        "M_0, M_1, M_2, M_3, ...",
        "E[W2^2] bounded",
        "sigma_n^2 -> 0 a.s.",
        "lim E[W2^2] (enclosure) or growth of E[W2^2_n]",
        "n",
        "theory E[W2^2_n]",
        "ensemble mean W2^2_n ± s.e.",
        "z",
        "median W2^2_n",
    ];
    let rows = points
        .iter()
        .map(|p| {
            let sizes: Vec<String> = (0..4)
                .map(|i| p.schedule.size(i).map_or("—".into(), |m| m.to_string()))
                .collect();
            let (mean, z) = if p.w2_feasible() {
                let se = p.sim.w2_sq.stderr;
                (
                    format!("{} ± {}", fmt_sig(p.sim.w2_sq.mean), fmt_sig(se)),
                    if se > 0.0 {
                        format!("{:.2}", (p.sim.w2_sq.mean - p.theory_w2_sq) / se)
                    } else {
                        "—".into()
                    },
                )
            } else {
                (
                    format!(
                        "{} (not estimable: relative variance {})",
                        fmt_sig(p.sim.w2_sq.mean),
                        fmt_sig(p.feasibility.w2_sq)
                    ),
                    "—".into(),
                )
            };
            let behaviour = if p.limit.bounded {
                p.limit_text()
            } else {
                format!(
                    "unbounded, {} (leading term {} at n = {})",
                    p.growth.describe(),
                    fmt_sig(p.growth.leading(p.generations).unwrap_or(f64::NAN)),
                    p.generations
                )
            };
            vec![
                p.schedule.label(),
                format!("{}, ...", sizes.join(", ")),
                if p.limit.bounded { "yes" } else { "no" }.into(),
                if p.schedule.is_summable() {
                    "no"
                } else {
                    "yes"
                }
                .into(),
                behaviour,
                p.generations.to_string(),
                fmt_sig(p.theory_w2_sq),
                mean,
                z,
                fmt_sig(p.sim.w2_sq_quartiles[1]),
            ]
        })
        .collect();
    TextTable {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// The schedule kinds of the classification table.
pub fn kinds(m: u64) -> Vec<String> {
    vec![
        "constant".into(),
        "linear".into(),
        "power:1.5".into(),
        "geometric:1.1".into(),
        format!("list:{},{},{},{}", m, 2 * m, 4 * m, 8 * m),
    ]
}

pub const INTRO: &str = "Sample-size schedules for the unbiased 1-D Gaussian recursion (sigma = 1): E[W2^2_n] = sigma^2 (S_n + 2 - 2 prod e_i) with S_n = sum_{i<n} 1/M_i, so it stays bounded iff S_n converges (superlinear growth of M_i; proofs/schedules.md). Where bounded, its limit is enclosed rigorously (the first terms exact, the tail bounded); where not, it grows like sigma^2 S_n: linearly (constant M), like n^(1-P)/((1-P) M) for M_i = ceil(M (i+1)^P), P < 1, and logarithmically (linear schedule, P = 1). The same sums decide the d-dimensional case (E||mu_n - mu||^2 = tr(Sigma) S_n, and det Sigma_n -> 0 almost surely iff S_n diverges). Theory: exact E[W2^2_n] at a fixed large n; simulation: a `sufficient` ensemble per schedule. The ensemble mean of W2^2_n is carried by rare chains when n sum 2/M_i is large; where it is not estimable at the run's size it is drawn as a hollow grey circle and not z-scored, and the median of W2^2_n and E[(mu_n - mu)^2] (whose mean is estimable over a wider range) carry the comparison.";

/// Runs the power grid and the schedule kinds; writes `<out>/schedules/comparison.*`,
/// `phase.*` and the figures.
pub fn section(scale: Scale, out_dir: &Path, seed: u64) -> Result<Section, ReportError> {
    let start = Instant::now();
    let dir = out_dir.join("schedules");
    crate::report::create_dir(&dir)?;
    let (m, n, r) = sizes(scale);
    let mut grid = Vec::new();
    for p in POWERS {
        let schedule = Schedule::parse(Some(m), &format!("power:{p}"))?;
        eprintln!(
            "collapse report: running schedules {} ...",
            schedule.label()
        );
        grid.push(run_point(schedule, Some(p), n, r, seed)?);
    }
    let mut kind_points = Vec::new();
    for k in kinds(m) {
        let schedule = Schedule::parse(Some(m), &k)?;
        eprintln!(
            "collapse report: running schedules {} ...",
            schedule.label()
        );
        // Another seed than the grid's: power:0 is constant and power:1 linear, so the same
        // seed would repeat those ensembles instead of adding independent ones.
        kind_points.push(run_point(schedule, None, n, r, seed.wrapping_add(1))?);
    }
    let all: Vec<ComparisonRow> = grid
        .iter()
        .flat_map(|p| rows("schedules-power", p, seed))
        .chain(
            kind_points
                .iter()
                .flat_map(|p| rows("schedules-kinds", p, seed.wrapping_add(1))),
        )
        .collect();
    let mut df = comparison_frame(&all)?;
    write_frame(
        &mut df,
        &dir.join("comparison.parquet"),
        &dir.join("comparison.csv"),
    )?;
    let mut phase = phase_frame(&grid)?;
    write_frame(
        &mut phase,
        &dir.join("phase.parquet"),
        &dir.join("phase.csv"),
    )?;
    let figures = render_figures(&dir, phase_figures(&grid, m, n))?;
    let infeasible: Vec<String> = grid
        .iter()
        .filter(|p| !p.w2_feasible())
        .map(|p| fmt_sig(p.power.unwrap_or(f64::NAN)))
        .collect();
    let caption = format!(
        "M = {m}, n = {n}, R = {r} chains per point, seed {seed}, method sufficient. The y axis is E[W2^2]: for P > 1 its limit (navy line, with the dashed lower and upper ends of its enclosure) above the exact value at n = {n} (black line); for P <= 1 the value at n = {n}, still growing, with the leading term of the divergence (dashed pink). Simulation: the ensemble mean of W2^2_n with a ±2 s.e. band where estimable, {} and the ensemble median of W2^2_n at every P. The second figure shows E[(mu_n - mu)^2] = sigma^2 S_n, the lower bound on E[W2^2], with its ensemble mean. Every grid point runs from the same seed (common random numbers), so the ensembles' errors are correlated across P: the curves are smooth, and neighbouring z-scores lean the same way.",
        if infeasible.is_empty() {
            "estimable at every P;".to_string()
        } else {
            format!(
                "not estimable (hollow grey, not z-scored) at P = {};",
                infeasible.join(", ")
            )
        }
    );
    let blocks = vec![
        Block {
            name: "Phase diagram: power P of M_i = ceil(M (i+1)^P)".into(),
            text: caption,
            text_table: Some(text_table(&grid)),
            rows: Vec::new(),
            figures,
        },
        Block {
            name: "Every schedule kind".into(),
            text: format!(
                "Unbiased estimator, M = {m}, sigma = 1, ensemble of {r} chains (sufficient, seed {}) at n = {n} (geometric: the largest n whose sizes stay below 2^48). The limit is an enclosure: the exact value lies in [lower, upper].",
                seed.wrapping_add(1)
            ),
            text_table: Some(text_table(&kind_points)),
            rows: Vec::new(),
            figures: Vec::new(),
        },
    ];
    let section = Section::compared(
        ("schedules", "Sample-size schedules", INTRO),
        blocks,
        grid.len() + kind_points.len(),
        &all,
        start,
    );
    let mut files = section.files.clone();
    files.extend(["phase.parquet".into(), "phase.csv".into()]);
    Ok(Section { files, ..section })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::section::z_stats;

    #[test]
    fn growth_classification() {
        let s = |t: &str| Schedule::parse(Some(10), t).unwrap();
        assert_eq!(Growth::of(&s("constant")), Growth::Linear { size: 10.0 });
        assert_eq!(Growth::of(&s("power:0")), Growth::Linear { size: 10.0 });
        assert_eq!(Growth::of(&s("geometric:1")), Growth::Linear { size: 10.0 });
        assert_eq!(Growth::of(&s("linear")), Growth::Logarithmic { base: 10.0 });
        assert_eq!(
            Growth::of(&s("power:1")),
            Growth::Logarithmic { base: 10.0 }
        );
        assert_eq!(Growth::of(&s("power:1.5")), Growth::Bounded);
        assert_eq!(Growth::of(&s("geometric:1.1")), Growth::Bounded);
        assert_eq!(
            Growth::of(&s("list:10,20,40")),
            Growth::Linear { size: 40.0 }
        );
        let g = Growth::of(&s("power:0.5"));
        assert_eq!(g.leading(100), Some(2.0 * 10.0 / 10.0));
        assert_eq!(Growth::Bounded.leading(5), None);
    }

    /// The leading term approaches the exact sigma^2 S_n (ratio -> 1) as n grows.
    #[test]
    fn leading_term_tracks_the_exact_sum() {
        for (t, n) in [
            ("constant", 1000u64),
            ("linear", 100_000),
            ("power:0.5", 100_000),
        ] {
            let s = Schedule::parse(Some(10), t).unwrap();
            let sum: f64 = (0..n).map(|i| 1.0 / s.size(i).unwrap() as f64).sum();
            let lead = Growth::of(&s).leading(n).unwrap();
            assert!((sum / lead - 1.0).abs() < 0.1, "{t}: {sum} vs {lead}");
        }
    }

    #[test]
    fn points_agree_and_geometric_stops_in_range() {
        let p = run_point(
            Schedule::parse(Some(20), "power:1.5").unwrap(),
            Some(1.5),
            50,
            2000,
            3,
        )
        .unwrap();
        assert!(p.limit.bounded);
        let r = rows("t", &p, 3);
        assert!(z_stats(&r).1 < 5.0, "{r:?}");
        // The limit is above the value at n = 50 (E[W2^2_n] increases).
        let (_, lo, _) = p.limit_f64().unwrap();
        assert!(lo > p.theory_w2_sq);
        let g = Schedule::parse(Some(100), "geometric:1.1").unwrap();
        let n = runnable_generations(&g, 1000);
        assert!(n > 100 && n < 1000 && g.size(n - 1).is_ok() && g.size(n).is_err());
    }
}
