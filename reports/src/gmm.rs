//! Gaussian mixtures fitted by EM, generation after generation (`collapse_sim::gmm`; spec and
//! closed forms in `collapse_analysis::gmm`): the paper's panel (chain 0's density contours at
//! the paper's generations) beside the ensemble curves, the L2 distance for the paper's five
//! sample sizes, and the statistical vs functional error. The process has no closed-form law:
//! the one theory/simulation pair is the functional error of a single Gaussian fitted to a
//! two-component truth with very many samples, against the exact moment-matching limit.

use crate::ReportError;
use crate::figure::{Curve, CurveKind, DensityPanel, Figure, PanelFigure, render_panels};
use crate::report::Scale;
use crate::section::{Block, Section, TextTable, render_figures};
use crate::table::{ComparisonRow, comparison_frame, fmt_sig, write_frame};
use collapse_analysis::Schedule;
use collapse_analysis::gmm::{GmmSpec, Mixture, l2_sq};
use collapse_sim::gmm::{GmmConfig, GmmRun, Model, simulate};
use collapse_sim::stats::Summary;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The paper's snapshot generations (its first fit is its generation 0: our n = g + 1).
pub const PAPER_SNAPSHOTS: [u64; 7] = [0, 50, 100, 150, 200, 350, 2000];
/// The paper's samples per generation.
pub const PAPER_SIZES: [u64; 5] = [500, 1_000, 10_000, 50_000, 200_000];
/// The paper's number of fits.
pub const PAPER_GENERATIONS: u64 = 2050;
/// M of the paper panel.
pub const PANEL_SAMPLES: u64 = 1_000;

/// What an experiment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The paper's setting at M = 1000: the panel and the ensemble curves.
    Paper,
    /// The paper's setting at another M (the sample-size figure).
    Size,
    /// (a) K = 1 fitted to a two-component truth with very large M.
    Functional,
    /// (b) K = 2 fitted to the two-component truth with small M.
    Statistical,
    /// (c) K = 1 with small M.
    Both,
}

#[derive(Debug, Clone)]
pub struct GmmExperiment {
    pub name: String,
    pub kind: Kind,
    pub spec: GmmSpec,
    pub config: GmmConfig,
}

impl GmmExperiment {
    pub fn new(kind: Kind, spec: GmmSpec, chains: u64, seed: u64) -> GmmExperiment {
        let tag = match kind {
            Kind::Paper => "paper",
            Kind::Size => "size",
            Kind::Functional => "functional",
            Kind::Statistical => "statistical",
            Kind::Both => "both",
        };
        let name = format!("gmm-{tag}-k{}-m{}", spec.components, spec.schedule.base);
        GmmExperiment {
            name,
            kind,
            spec,
            config: GmmConfig::new(chains, seed),
        }
    }

    /// Rough cost for scheduling: points fitted times K, times a factor for the extra EM
    /// iterations (and cache misses) of large M.
    fn cost(&self) -> f64 {
        let m = self.spec.schedule.base as f64;
        let points = (self.config.chains * self.spec.generations) as f64 * m;
        points * self.spec.components as f64 * (1.0 + m / 50_000.0)
    }
}

/// The two-component truth of the functional/statistical experiments: weights 1/2, means
/// (-2, 0) and (2, 0), identity covariances.
pub fn two_blobs() -> Mixture {
    let id = || vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    Mixture::new(
        vec![0.5, 0.5],
        vec![vec![-2.0, 0.0], vec![2.0, 0.0]],
        vec![id(), id()],
    )
    .expect("a valid mixture")
}

/// Sizes of a scale.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// (N, R) of the paper panel (M = 1000).
    pub paper: (u64, u64),
    /// (N, R) per M of `PAPER_SIZES` other than 1000 (that one is the panel's run).
    pub sizes: [(u64, u64); 4],
    /// (M, N, R) of (a).
    pub functional: (u64, u64, u64),
    /// (M, N, R) of (b) and (c).
    pub statistical: (u64, u64, u64),
}

/// Sizes of a scale. One fit costs about 1 ms on one core at M = 1000, 5-16 ms at 10^4, 90 ms
/// at 5 10^4 and 0.5 s at 2 10^5 (EM takes fewer iterations as a chain collapses), so at
/// `default` the large M run fewer generations with a few chains (about 160 core-seconds in
/// all).
pub fn sizes(scale: Scale) -> Sizes {
    match scale {
        Scale::Smoke => Sizes {
            paper: (60, 8),
            sizes: [(60, 8), (10, 2), (4, 2), (2, 2)],
            functional: (100_000, 3, 16),
            statistical: (100, 60, 16),
        },
        Scale::Default => Sizes {
            paper: (PAPER_GENERATIONS, 32),
            sizes: [(PAPER_GENERATIONS, 32), (300, 8), (48, 6), (16, 4)],
            functional: (100_000, 20, 32),
            statistical: (100, 500, 64),
        },
        Scale::Paper => Sizes {
            paper: (PAPER_GENERATIONS, 320),
            sizes: [
                (PAPER_GENERATIONS, 320),
                (PAPER_GENERATIONS, 32),
                (PAPER_GENERATIONS, 4),
                (PAPER_GENERATIONS, 2),
            ],
            functional: (100_000, 50, 320),
            statistical: (100, PAPER_GENERATIONS, 640),
        },
    }
}

/// The experiments of a scale: the panel, the other four sample sizes, then (a), (b), (c).
pub fn experiments(scale: Scale, seed: u64) -> Result<Vec<GmmExperiment>, ReportError> {
    let s = sizes(scale);
    let mut list = Vec::new();
    let mut paper = GmmExperiment::new(
        Kind::Paper,
        GmmSpec::paper(PANEL_SAMPLES, s.paper.0)?,
        s.paper.1,
        seed,
    );
    // Only the longest run draws a progress bar: bars of concurrent runs overwrite each other.
    paper.config.progress = true;
    list.push(paper);
    let others = PAPER_SIZES.iter().filter(|&&m| m != PANEL_SAMPLES);
    for (&m, &(n, r)) in others.zip(&s.sizes) {
        list.push(GmmExperiment::new(
            Kind::Size,
            GmmSpec::paper(m, n)?,
            r,
            seed,
        ));
    }
    let (m, n, r) = s.functional;
    list.push(GmmExperiment::new(
        Kind::Functional,
        GmmSpec::new(1, Schedule::constant(m), n, two_blobs())?,
        r,
        seed,
    ));
    let (m, n, r) = s.statistical;
    for (kind, k) in [(Kind::Statistical, 2), (Kind::Both, 1)] {
        list.push(GmmExperiment::new(
            kind,
            GmmSpec::new(k, Schedule::constant(m), n, two_blobs())?,
            r,
            seed,
        ));
    }
    Ok(list)
}

/// One experiment's run and its long-form rows.
pub struct GmmOutcome {
    pub experiment: GmmExperiment,
    pub run: GmmRun,
    pub rows: Vec<ComparisonRow>,
}

/// Runs the experiments on `available_parallelism` workers, longest first (each run is
/// deterministic whatever the threads, so the results do not depend on the schedule).
pub fn run_experiments(list: &[GmmExperiment]) -> Result<Vec<GmmOutcome>, ReportError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, list.len().max(1));
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_by(|&i, &j| list[j].cost().total_cmp(&list[i].cost()));
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<GmmRun, collapse_sim::SimError>>>> =
        Mutex::new((0..list.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let e = &list[i];
                    eprintln!("collapse report: running {} ...", e.name);
                    let run = simulate(&e.spec, &e.config);
                    slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(run);
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|p| p.into_inner());
    list.iter()
        .zip(slots)
        .map(|(e, run)| {
            let run = run.expect("every experiment ran")?;
            let rows = compare(e, &run);
            Ok(GmmOutcome {
                experiment: e.clone(),
                run,
                rows,
            })
        })
        .collect()
}

/// ||f_0 - N(m, S)||_2^2 for the truth's moments (m, S): the limit of (a) as M -> infinity.
pub fn functional_limit(truth: &Mixture) -> f64 {
    l2_sq(truth, &truth.moment_matched())
}

/// A fraction over `chains` chains with its binomial standard error (NaN for one chain).
fn fraction(p: f64, chains: u64) -> Summary {
    let stderr = if chains > 1 {
        (p * (1.0 - p) / (chains - 1) as f64).max(0.0).sqrt()
    } else {
        f64::NAN
    };
    Summary { mean: p, stderr }
}

/// The per-generation quantities of a run, in table order.
fn quantities(
    row: &collapse_sim::gmm::GmmGenerationStats,
    chains: u64,
) -> [(&'static str, Summary); 9] {
    [
        ("l2_sq", row.l2_sq),
        ("heldout_loglik", row.heldout_loglik),
        ("distance", row.distance),
        ("min_eigenvalue", row.min_eigenvalue),
        ("max_eigenvalue", row.max_eigenvalue),
        ("min_weight", row.min_weight),
        ("vanished_fraction", fraction(row.vanished_fraction, chains)),
        ("em_iterations", row.em_iterations),
        (
            "unconverged_fraction",
            fraction(row.unconverged_fraction, chains),
        ),
    ]
}

/// The long-form rows of one run: every quantity at every generation (`distance` only where
/// defined). Theory exists only for (a)'s L2 (the moment-matching limit, from n = 1), z-scored
/// at n = 1 alone: later generations of the chain are not independent of it.
pub fn compare(e: &GmmExperiment, run: &GmmRun) -> Vec<ComparisonRow> {
    let chains = run.config.chains;
    let limit = (e.kind == Kind::Functional).then(|| functional_limit(&e.spec.truth));
    let mut rows = Vec::new();
    for g in &run.rows {
        for (quantity, s) in quantities(g, chains) {
            if quantity == "distance" && !s.mean.is_finite() {
                continue;
            }
            let stderr = if chains > 1 { s.stderr } else { f64::NAN };
            let theory = limit.filter(|_| quantity == "l2_sq" && g.n > 0);
            let z = theory
                .filter(|_| g.n == 1 && stderr > 0.0 && stderr.is_finite())
                .map(|t| (s.mean - t) / stderr);
            rows.push(ComparisonRow {
                experiment: e.name.clone(),
                quantity: quantity.to_string(),
                generation: g.n,
                theory,
                empirical: s.mean,
                stderr,
                z,
                mc_feasible: true,
                method: "em".into(),
                estimator: "mle".into(),
                schedule: e.spec.schedule.label(),
                samples: e.spec.schedule.base,
                chains,
                seed: run.config.seed,
            });
        }
    }
    rows
}

/// Our generations of the paper's snapshots (n = g + 1) that a run of N generations has; when
/// some are beyond N, N itself is added.
pub fn snapshot_generations(generations: u64) -> Vec<u64> {
    let mut v: Vec<u64> = PAPER_SNAPSHOTS
        .iter()
        .map(|g| g + 1)
        .filter(|&n| n <= generations)
        .collect();
    if v.len() < PAPER_SNAPSHOTS.len() && v.last() != Some(&generations) {
        v.push(generations);
    }
    v
}

/// Standard deviations of a mixture's components along their main axes (sqrt of the largest
/// covariance eigenvalue), by component.
fn component_sds(m: &Mixture) -> Vec<f64> {
    (0..m.components())
        .map(|k| {
            m.cov(k)
                .symmetric_eigenvalues()
                .iter()
                .fold(0.0f64, |a, &b| a.max(b))
                .sqrt()
        })
        .collect()
}

/// Two significant digits.
fn sig2(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return fmt_sig(x);
    }
    let scale = 10f64.powi(x.abs().log10().floor() as i32 - 1);
    fmt_sig((x / scale).round() * scale)
}

/// Nodes per axis of a contour panel.
const GRID: usize = 121;
/// Contours enclose these fractions of the mass shown (outer first).
const MASSES: [f64; 5] = [0.99, 0.9, 0.75, 0.5, 0.25];

/// A contour panel of a 2-D mixture: the density on a grid covering every component's mean
/// +- 4 sd, with contours at the highest-density regions of `MASSES` (from the grid, so of the
/// mass the grid resolves) and the component means marked.
pub fn density_panel(title: String, m: &Mixture) -> DensityPanel {
    let sds = component_sds(m);
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for (k, sd) in sds.iter().enumerate() {
        for a in 0..2 {
            lo[a] = lo[a].min(m.mean(k)[a] - 4.0 * sd);
            hi[a] = hi[a].max(m.mean(k)[a] + 4.0 * sd);
        }
    }
    let model = Model::of(m);
    let mut white = [0.0; 2];
    let at = |a: usize, i: usize| lo[a] + (hi[a] - lo[a]) * i as f64 / (GRID - 1) as f64;
    let values: Vec<f64> = (0..GRID * GRID)
        .map(|k| {
            let x = [at(0, k % GRID), at(1, k / GRID)];
            model.log_density(&x, &mut white).exp()
        })
        .collect();
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = sorted.iter().sum();
    let mut masses = MASSES;
    masses.sort_by(f64::total_cmp);
    let mut levels = Vec::new();
    let mut cumulative = 0.0;
    let mut mass = masses.iter().peekable();
    for &v in &sorted {
        cumulative += v;
        while let Some(&&p) = mass.peek() {
            if cumulative < p * total {
                break;
            }
            levels.push(v);
            mass.next();
        }
    }
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    DensityPanel {
        title,
        x: lo[0]..hi[0],
        y: lo[1]..hi[1],
        nx: GRID,
        ny: GRID,
        values,
        levels,
        marks: (0..m.components())
            .map(|k| (m.mean(k)[0], m.mean(k)[1]))
            .collect(),
    }
}

/// The paper's panel: the truth and chain 0's fit at the snapshot generations.
pub fn panel_figure(o: &GmmOutcome) -> PanelFigure {
    let chain0 = &o.run.chain0;
    let mut panels = vec![density_panel("truth (n = 0)".into(), &chain0[0])];
    for n in snapshot_generations(o.experiment.spec.generations) {
        let m = &chain0[n as usize];
        let sds: Vec<String> = component_sds(m).into_iter().map(sig2).collect();
        panels.push(density_panel(
            format!("n = {n} (paper {}): sd {}", n - 1, sds.join(", ")),
            m,
        ));
    }
    PanelFigure {
        title: format!(
            "Chain 0: K = {} EM fit to M = {} draws of the previous fit, d = 2",
            o.experiment.spec.components, o.experiment.spec.schedule.base
        ),
        subtitle: "Contours enclose 99, 90, 75, 50, 25% of the mass (light to dark); × = component means; sd = each component's largest standard deviation; own scale per panel.".into(),
        columns: panels.len().min(4),
        panels,
    }
}

/// At most about 500 plotted points per curve: every generation up to 100, then a stride
/// (the last generation always kept).
fn plotted(n: u64, last: u64) -> bool {
    let stride = last.div_ceil(400).max(1);
    n <= 100 || n.is_multiple_of(stride) || n == last
}

/// The ensemble curve of `quantity` (n >= 1), optionally transformed (e.g. negated).
fn ensemble_curve(o: &GmmOutcome, quantity: &str, label: String, f: impl Fn(f64) -> f64) -> Curve {
    let last = o.experiment.spec.generations;
    let s: Vec<&ComparisonRow> = o
        .rows
        .iter()
        .filter(|r| r.quantity == quantity && r.generation > 0 && plotted(r.generation, last))
        .collect();
    Curve {
        label,
        x: s.iter().map(|r| r.generation as f64).collect(),
        y: s.iter().map(|r| f(r.empirical)).collect(),
        kind: CurveKind::Empirical {
            stderr: s.iter().map(|r| r.stderr).collect(),
            feasible: s.iter().map(|r| r.mc_feasible).collect(),
        },
    }
}

fn flat(label: String, x0: f64, x1: f64, y: f64, kind: CurveKind) -> Curve {
    Curve {
        label,
        x: vec![x0, x1],
        y: vec![y, y],
        kind,
    }
}

/// The ensemble figures of the paper run.
pub fn paper_figures(o: &GmmOutcome) -> Vec<(String, Figure)> {
    let e = &o.experiment;
    let (m, r, last) = (
        e.spec.schedule.base,
        e.config.chains,
        e.spec.generations as f64,
    );
    let tag = format!("K = 2, M = {m}, R = {r} chains");
    let fig = |title: &str, y_label: &str, log_y: bool, curves: Vec<Curve>| Figure {
        title: format!("{title} ({tag})"),
        x_label: "generation n (paper's g = n - 1)".into(),
        y_label: y_label.into(),
        log_y,
        curves,
    };
    let truth_loglik = o.run.rows[0].heldout_loglik.mean;
    vec![
        (
            "gmm-paper-l2".into(),
            fig(
                "Squared L2 distance to the truth",
                "||f_n - f_0||_2^2",
                true,
                vec![ensemble_curve(o, "l2_sq", "ensemble mean".into(), |v| v)],
            ),
        ),
        (
            "gmm-paper-loglik".into(),
            fig(
                "Held-out negative log-likelihood of D_0 samples",
                "mean -ln f_n(x) per held-out point",
                true,
                vec![
                    flat(
                        "truth f_0 on the same held-out sample".into(),
                        1.0,
                        last,
                        -truth_loglik,
                        CurveKind::Theory,
                    ),
                    ensemble_curve(o, "heldout_loglik", "ensemble mean".into(), |v| -v),
                ],
            ),
        ),
        (
            "gmm-paper-distance".into(),
            fig(
                "MW2^2 to the truth (an upper bound on W2^2)",
                "MW2^2(f_n, f_0)",
                true,
                vec![ensemble_curve(o, "distance", "ensemble mean".into(), |v| v)],
            ),
        ),
        (
            "gmm-paper-eigenvalues".into(),
            fig(
                "Extreme covariance eigenvalues over the components",
                "eigenvalue",
                true,
                vec![
                    flat("truth: 1".into(), 1.0, last, 1.0, CurveKind::Theory),
                    flat(
                        "paper's final variance (sd 0.01, one run)".into(),
                        1.0,
                        last,
                        1e-4,
                        CurveKind::Bound,
                    ),
                    ensemble_curve(o, "max_eigenvalue", "mean largest eigenvalue".into(), |v| v),
                    ensemble_curve(
                        o,
                        "min_eigenvalue",
                        "mean smallest eigenvalue".into(),
                        |v| v,
                    ),
                ],
            ),
        ),
        (
            "gmm-paper-weights".into(),
            fig(
                "Smallest weight and vanished components",
                "weight / fraction of chains",
                false,
                vec![
                    ensemble_curve(o, "min_weight", "mean smallest weight".into(), |v| v),
                    ensemble_curve(
                        o,
                        "vanished_fraction",
                        "chains with a weight below 1/M".into(),
                        |v| v,
                    ),
                ],
            ),
        ),
    ]
}

/// The sample-size runs (the panel's run for M = 1000), by M.
fn by_size(outcomes: &[GmmOutcome]) -> Vec<&GmmOutcome> {
    let mut v: Vec<&GmmOutcome> = outcomes
        .iter()
        .filter(|o| matches!(o.experiment.kind, Kind::Paper | Kind::Size))
        .collect();
    v.sort_by_key(|o| o.experiment.spec.schedule.base);
    v
}

/// L2 vs generation for the five sample sizes: the whole runs, and the first generations that
/// every run has.
pub fn size_figures(outcomes: &[GmmOutcome]) -> Vec<(String, Figure)> {
    let runs = by_size(outcomes);
    let common = runs
        .iter()
        .map(|o| o.experiment.spec.generations)
        .min()
        .unwrap_or(1);
    let curves = |upto: u64| -> Vec<Curve> {
        runs.iter()
            .map(|o| {
                let e = &o.experiment;
                let mut c = ensemble_curve(
                    o,
                    "l2_sq",
                    format!("M = {} (R = {})", e.spec.schedule.base, e.config.chains),
                    |v| v,
                );
                let keep: Vec<bool> = c.x.iter().map(|&x| x <= upto as f64).collect();
                let pick = |v: &[f64]| -> Vec<f64> {
                    v.iter()
                        .zip(&keep)
                        .filter(|(_, k)| **k)
                        .map(|(x, _)| *x)
                        .collect()
                };
                c.x = pick(&c.x);
                c.y = pick(&c.y);
                if let CurveKind::Empirical { stderr, feasible } = &mut c.kind {
                    *stderr = pick(stderr);
                    feasible.truncate(c.x.len());
                }
                c
            })
            .collect()
    };
    let fig = |title: String, curves: Vec<Curve>| Figure {
        title,
        x_label: "generation n (paper's g = n - 1)".into(),
        y_label: "||f_n - f_0||_2^2".into(),
        log_y: true,
        curves,
    };
    vec![
        (
            "gmm-sizes-l2".into(),
            fig(
                "Squared L2 distance to the truth by samples per generation M (K = 2)".into(),
                curves(u64::MAX),
            ),
        ),
        (
            "gmm-sizes-l2-early".into(),
            fig(
                format!("The same, first {common} generations (every M)"),
                curves(common),
            ),
        ),
    ]
}

fn find(outcomes: &[GmmOutcome], kind: Kind) -> Option<&GmmOutcome> {
    outcomes.iter().find(|o| o.experiment.kind == kind)
}

/// (a), (b), (c) on one figure with (a)'s exact limit.
pub fn error_figure(outcomes: &[GmmOutcome]) -> Option<(String, Figure)> {
    let (a, b, c) = (
        find(outcomes, Kind::Functional)?,
        find(outcomes, Kind::Statistical)?,
        find(outcomes, Kind::Both)?,
    );
    let label = |what: &str, o: &GmmOutcome| {
        let e = &o.experiment;
        format!(
            "{what}: K = {}, M = {} (R = {})",
            e.spec.components, e.spec.schedule.base, e.config.chains
        )
    };
    let last = b
        .experiment
        .spec
        .generations
        .max(a.experiment.spec.generations) as f64;
    Some((
        "gmm-error-kinds-l2".into(),
        Figure {
            title: "Functional vs statistical error: L2 to a two-component truth".into(),
            x_label: "generation n".into(),
            y_label: "||f_n - f_0||_2^2".into(),
            log_y: true,
            curves: vec![
                ensemble_curve(a, "l2_sq", label("(a) functional", a), |v| v),
                ensemble_curve(b, "l2_sq", label("(b) statistical", b), |v| v),
                ensemble_curve(c, "l2_sq", label("(c) both", c), |v| v),
                flat(
                    "exact limit of (a): ||f_0 - N(m, S)||^2".into(),
                    1.0,
                    last,
                    functional_limit(&a.experiment.spec.truth),
                    CurveKind::TheoryFor(0),
                ),
            ],
        },
    ))
}

fn row<'a>(o: &'a GmmOutcome, quantity: &str, n: u64) -> Option<&'a ComparisonRow> {
    o.rows
        .iter()
        .find(|r| r.quantity == quantity && r.generation == n)
}

fn mean_se(r: Option<&ComparisonRow>) -> String {
    match r {
        Some(r) if r.stderr.is_finite() => {
            format!("{} ± {}", fmt_sig(r.empirical), sig2(r.stderr))
        }
        Some(r) => fmt_sig(r.empirical),
        None => "—".into(),
    }
}

fn paper_text(o: &GmmOutcome) -> String {
    let e = &o.experiment;
    let n = e.spec.generations;
    let last = &o.run.rows[n as usize];
    let sds: Vec<String> = component_sds(&o.run.chain0[n as usize])
        .into_iter()
        .map(sig2)
        .collect();
    let weights: Vec<String> = o.run.chain0[n as usize]
        .weights
        .iter()
        .map(|&w| sig2(w))
        .collect();
    let mut s = format!(
        "K = 2 full-covariance components fitted by EM (tol 1e-5, at most 2000 iterations, k-means++ start) to M = {} draws of the previous fit, from 1000-point draws of N(0, I_2); N = {n} generations, R = {} chains, seed {}, {:.1} s. ",
        e.spec.schedule.base, e.config.chains, e.config.seed, o.run.seconds
    );
    let _ = write!(
        s,
        "Chain 0 at n = {n}: component standard deviations {} (largest axis) with weights {} (the paper's single run ends with both near 0.01). ",
        sds.join(", "),
        weights.join(", ")
    );
    let _ = write!(
        s,
        "Over the ensemble at n = {n}: mean smallest covariance eigenvalue {} (sd {}), mean largest {}; L2^2 to the truth {}; held-out log-likelihood {} (the truth scores {} on the same sample); {}% of chains have a component of weight below 1/M; EM took {} iterations on average and {}% of fits hit the cap. ",
        mean_se(row(o, "min_eigenvalue", n)),
        sig2(last.min_eigenvalue.mean.max(0.0).sqrt()),
        mean_se(row(o, "max_eigenvalue", n)),
        mean_se(row(o, "l2_sq", n)),
        mean_se(row(o, "heldout_loglik", n)),
        fmt_sig(o.run.rows[0].heldout_loglik.mean),
        fmt_sig(100.0 * last.vanished_fraction),
        sig2(last.em_iterations.mean),
        fmt_sig(100.0 * last.unconverged_fraction),
    );
    s.push_str("The means at late generations are carried by the chains whose components are narrowest (L2^2 grows like 1/variance): their bands are wide. No theory: the table lists the ensemble at the paper's snapshots.");
    s
}

fn paper_rows(o: &GmmOutcome) -> Vec<ComparisonRow> {
    let gens = snapshot_generations(o.experiment.spec.generations);
    [
        "l2_sq",
        "heldout_loglik",
        "distance",
        "min_eigenvalue",
        "max_eigenvalue",
        "min_weight",
        "vanished_fraction",
    ]
    .iter()
    .flat_map(|q| {
        o.rows
            .iter()
            .filter(|r| r.quantity == *q && (r.generation == 0 || gens.contains(&r.generation)))
            .cloned()
            .collect::<Vec<_>>()
    })
    .collect()
}

/// L2 at the table generations, one column per M.
fn size_table(outcomes: &[GmmOutcome]) -> TextTable {
    let runs = by_size(outcomes);
    let longest = runs
        .iter()
        .map(|o| o.experiment.spec.generations)
        .max()
        .unwrap_or(1);
    let mut header = vec!["generation n".to_string()];
    header.extend(runs.iter().map(|o| {
        format!(
            "M = {} (N = {}, R = {})",
            o.experiment.spec.schedule.base,
            o.experiment.spec.generations,
            o.experiment.config.chains
        )
    }));
    let rows = crate::report::table_generations(longest)
        .into_iter()
        .filter(|&n| n > 0)
        .map(|n| {
            let mut cells = vec![n.to_string()];
            cells.extend(runs.iter().map(|o| mean_se(row(o, "l2_sq", n))));
            cells
        })
        .collect();
    TextTable { header, rows }
}

fn size_text(outcomes: &[GmmOutcome]) -> String {
    let runs = by_size(outcomes);
    let parts: Vec<String> = runs
        .iter()
        .map(|o| {
            let e = &o.experiment;
            format!(
                "M = {}: N = {}, R = {} ({:.1} s)",
                e.spec.schedule.base, e.spec.generations, e.config.chains, o.run.seconds
            )
        })
        .collect();
    let mut s = format!(
        "The paper's setting (K = 2 fitted to N(0, I_2)) at the paper's five sample sizes. EM's cost grows with M, so the large M run fewer generations and chains than the small ones: {}. ",
        parts.join("; ")
    );
    if runs.iter().any(|o| o.experiment.config.chains == 1) {
        s.push_str("A run of one chain has no band. ");
    }
    if runs.iter().any(|o| o.experiment.config.chains < 10) {
        s.push_str("With a few chains the standard error is itself rough, so those bands are wide and ragged. ");
    }
    // M L2^2 at n = 1 is flat while the sample limits the fit (L2^2 ~ 1/M).
    let scaled: Vec<(u64, f64)> = runs
        .iter()
        .filter_map(|o| {
            let m = o.experiment.spec.schedule.base;
            row(o, "l2_sq", 1).map(|r| (m, m as f64 * r.empirical))
        })
        .collect();
    if let (Some(first), Some(last)) = (scaled.first(), scaled.last()) {
        let list: Vec<String> = scaled
            .iter()
            .map(|(m, v)| format!("{} at M = {m}", sig2(*v)))
            .collect();
        let _ = write!(s, "M ||f_1 - f_0||^2 is {}", list.join(", "));
        if last.1 > 3.0 * first.1 {
            s.push_str(": the distance falls more slowly than 1/M at large M, where EM's stopping rule (tol 1e-5 on the mean log-likelihood per point, the paper's), not the sample, limits the fit (a tighter tolerance lowers it). ");
        } else {
            s.push_str(": the first fit's distance falls like 1/M. ");
        }
    }
    s.push_str("Mean ± s.e. of ||f_n - f_0||_2^2 over chains:");
    s
}

/// The text of the functional/statistical block, with the z of (a) at n = 1.
fn error_text(outcomes: &[GmmOutcome]) -> String {
    let (Some(a), Some(b), Some(c)) = (
        find(outcomes, Kind::Functional),
        find(outcomes, Kind::Statistical),
        find(outcomes, Kind::Both),
    ) else {
        return String::new();
    };
    let limit = functional_limit(&a.experiment.spec.truth);
    let l2 = |o: &GmmOutcome, n: u64| row(o, "l2_sq", n).map_or(f64::NAN, |r| r.empirical);
    let a1 = row(a, "l2_sq", 1);
    let na = a.experiment.spec.generations;
    let nb = b.experiment.spec.generations;
    let (ea, sa) = (&a.experiment, &b.experiment);
    let mut s = format!(
        "Truth D_0: weights 1/2, means (-2, 0) and (2, 0), identity covariances. (a) Functional error only: K = 1 fitted by EM (the sample mean and covariance) to M = {} draws, R = {} chains, N = {na}; as M -> infinity the fit tends to N(m, S) with the truth's mean and covariance, so its L2^2 to the truth tends to the exact ||f_0 - N(m, S)||^2 = {}. ",
        ea.spec.schedule.base,
        ea.config.chains,
        fmt_sig(limit)
    );
    if let Some(r) = a1 {
        // The finite-sample bias is O(1/M): (c)'s excess at n = 1, scaled from its M to (a)'s.
        let bias = (l2(c, 1) - limit) * c.experiment.spec.schedule.base as f64
            / ea.spec.schedule.base as f64;
        let _ = write!(
            s,
            "At n = 1 the ensemble gives {} ± {} (z = {}; the finite-sample bias, O(1/M), is about {} judging by (c)'s excess scaled to this M, {} standard errors), and it stays there: {} at n = {na}. ",
            fmt_sig(r.empirical),
            sig2(r.stderr),
            r.z.map_or("—".into(), |z| format!("{z:.2}")),
            sig2(bias),
            sig2(bias / r.stderr),
            mean_se(row(a, "l2_sq", na))
        );
    }
    let _ = write!(
        s,
        "(b) Statistical error only: K = 2 (the right family) with M = {}, R = {} chains, N = {nb}: L2^2 starts at {} and grows to {}. (c) Both: K = 1 with the same M: {} at n = 1, {} at n = {nb}. ",
        sa.spec.schedule.base,
        sa.config.chains,
        sig2(l2(b, 1)),
        sig2(l2(b, nb)),
        sig2(l2(c, 1)),
        sig2(l2(c, nb)),
    );
    let c1 = row(c, "l2_sq", 1);
    let _ = write!(
        s,
        "How they compound: at n = 1, (c) sits above the functional floor by {} (s.e. {}): the sampling error of the one-Gaussian fit comes on top of the approximation error; ",
        sig2(l2(c, 1) - limit),
        sig2(c1.map_or(f64::NAN, |r| r.stderr))
    );
    let (bn, cn) = (l2(b, nb), l2(c, nb));
    if cn > bn {
        let _ = write!(
            s,
            "then the statistical drift takes over and the floor stops mattering: at n = {nb}, (c) is {}x its floor and {}x (b).",
            sig2(cn / limit),
            sig2(cn / bn)
        );
    } else {
        let _ = write!(
            s,
            "then the statistical drift takes over and the floor stops mattering: at n = {nb}, (c) is {}x its floor, yet below (b) ({}x): the two-component fit gives each component about M/2 points, so its variances collapse faster than those of the single Gaussian.",
            sig2(cn / limit),
            sig2(bn / cn)
        );
    }
    s
}

/// (a), (b), (c) at the table generations.
fn error_table(outcomes: &[GmmOutcome]) -> Option<TextTable> {
    let list = [Kind::Functional, Kind::Statistical, Kind::Both].map(|k| find(outcomes, k));
    let [Some(a), Some(b), Some(c)] = list else {
        return None;
    };
    let longest = b
        .experiment
        .spec
        .generations
        .max(a.experiment.spec.generations);
    let header = vec![
        "generation n".into(),
        "(a) functional".into(),
        "(b) statistical".into(),
        "(c) both".into(),
    ];
    let rows = crate::report::table_generations(longest)
        .into_iter()
        .filter(|&n| n > 0)
        .map(|n| {
            vec![
                n.to_string(),
                mean_se(row(a, "l2_sq", n)),
                mean_se(row(b, "l2_sq", n)),
                mean_se(row(c, "l2_sq", n)),
            ]
        })
        .collect();
    Some(TextTable { header, rows })
}

pub const INTRO: &str = "The paper's Gaussian-mixture experiment: 1000 draws of N(0, I_2) are fitted by a two-component full-covariance Gaussian mixture (EM, tol 1e-5, at most 2000 iterations), and each generation is fitted to 1000 draws of the previous fit, for 2050 generations. Here generation 0 is the truth itself and generation n is the n-th fit, so the paper's generation g is our n = g + 1. The metric is the squared L2 distance between the densities, in closed form (sums of Gaussian overlaps); beside it the held-out log-likelihood of a fixed sample of the truth, MW2^2 (the best coupling of components under Gaussian W2^2, an upper bound on W2^2), the extreme covariance eigenvalues and the smallest weight, with ±2 s.e. bands over chains. No closed-form law exists for EM chains: the one theory/simulation pair is the functional error of a single Gaussian fitted to a two-component truth with 10^5 points, against the exact moment-matching limit.";

/// Runs the section's experiments, writes `<out>/gmm/comparison.{parquet,csv}` and the figures.
pub fn section(scale: Scale, out_dir: &Path, seed: u64) -> Result<Section, ReportError> {
    let start = Instant::now();
    let dir = out_dir.join("gmm");
    crate::report::create_dir(&dir)?;
    let outcomes = run_experiments(&experiments(scale, seed)?)?;
    let all: Vec<ComparisonRow> = outcomes
        .iter()
        .flat_map(|o| o.rows.iter().cloned())
        .collect();
    let mut df = comparison_frame(&all)?;
    write_frame(
        &mut df,
        &dir.join("comparison.parquet"),
        &dir.join("comparison.csv"),
    )?;
    let mut blocks = Vec::new();
    if let Some(p) = find(&outcomes, Kind::Paper) {
        let stem = "gmm-paper-contours".to_string();
        let panel = panel_figure(p);
        render_panels(
            &panel,
            &dir.join(format!("{stem}.svg")),
            &dir.join(format!("{stem}.png")),
        )?;
        let mut figures = vec![(stem, panel.title)];
        figures.extend(render_figures(&dir, paper_figures(p))?);
        blocks.push(Block {
            name: format!("The paper's panel ({})", p.experiment.name),
            text: paper_text(p),
            text_table: None,
            rows: paper_rows(p),
            figures,
        });
    }
    blocks.push(Block {
        name: "Samples per generation".into(),
        text: size_text(&outcomes),
        text_table: Some(size_table(&outcomes)),
        rows: Vec::new(),
        figures: render_figures(&dir, size_figures(&outcomes))?,
    });
    if let Some(fig) = error_figure(&outcomes) {
        let a_rows = find(&outcomes, Kind::Functional)
            .map(|a| {
                a.rows
                    .iter()
                    .filter(|r| r.quantity == "l2_sq" && r.theory.is_some())
                    .filter(|r| {
                        crate::report::table_generations(a.experiment.spec.generations)
                            .contains(&r.generation)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        blocks.push(Block {
            name: "Statistical vs functional error".into(),
            text: error_text(&outcomes),
            text_table: error_table(&outcomes),
            rows: a_rows,
            figures: render_figures(&dir, vec![fig])?,
        });
    }
    Ok(Section::compared(
        ("gmm", "Gaussian mixtures by EM (gmm)", INTRO),
        blocks,
        outcomes.len(),
        &all,
        start,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{COLUMNS, read_parquet};
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "collapse-reports-gmm-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn snapshots_follow_the_paper_and_clamp_to_n() {
        assert_eq!(
            snapshot_generations(PAPER_GENERATIONS),
            vec![1, 51, 101, 151, 201, 351, 2001]
        );
        assert_eq!(snapshot_generations(60), vec![1, 51, 60]);
        assert_eq!(snapshot_generations(30), vec![1, 30]);
        assert_eq!(snapshot_generations(1), vec![1]);
    }

    /// For N(0, I_2) the region of mass p is the disc r^2 <= -2 ln(1 - p), whose boundary has
    /// density (1 - p) / (2 pi): the grid's levels match to 2%.
    #[test]
    fn panel_levels_enclose_their_mass() {
        let p = density_panel("n".into(), &Mixture::standard_normal(2));
        assert_eq!(p.levels.len(), MASSES.len());
        let mut exact: Vec<f64> = MASSES
            .iter()
            .map(|m| (1.0 - m) / (2.0 * std::f64::consts::PI))
            .collect();
        exact.sort_by(f64::total_cmp);
        for (got, want) in p.levels.iter().zip(&exact) {
            assert!((got / want - 1.0).abs() < 0.02, "{got} vs {want}");
        }
        assert_eq!(p.marks, vec![(0.0, 0.0)]);
        assert!((p.x.start + 4.0).abs() < 1e-12 && (p.y.end - 4.0).abs() < 1e-12);
    }

    /// The pool runs each experiment exactly as `simulate` alone does.
    #[test]
    fn concurrent_runs_match_single_runs() {
        let list = vec![
            GmmExperiment::new(Kind::Size, GmmSpec::paper(200, 5).unwrap(), 20, 3),
            GmmExperiment::new(
                Kind::Both,
                GmmSpec::new(1, Schedule::constant(50), 4, two_blobs()).unwrap(),
                5,
                3,
            ),
        ];
        let outcomes = run_experiments(&list).unwrap();
        for (e, o) in list.iter().zip(&outcomes) {
            let alone = simulate(&e.spec, &e.config).unwrap();
            assert_eq!(alone.rows, o.run.rows);
            assert_eq!(alone.chain0, o.run.chain0);
        }
    }

    /// The section at smoke scale: (a)'s L2 at n = 1 agrees with the moment-matching limit and
    /// rejects a limit 5% off, every figure is written, and the table has every row.
    #[test]
    fn smoke_section_agrees_renders_and_tabulates() {
        let out = scratch("smoke");
        let seed = crate::report::REPORT_SEED;
        let s = section(Scale::Smoke, &out, seed).unwrap();

        let limit = functional_limit(&two_blobs());
        let a = s
            .blocks
            .iter()
            .flat_map(|b| &b.rows)
            .find(|r| {
                r.experiment.starts_with("gmm-functional")
                    && r.quantity == "l2_sq"
                    && r.generation == 1
            })
            .expect("(a) at n = 1");
        assert_eq!(a.theory, Some(limit));
        let z = a.z.expect("z-scored");
        assert!(z.abs() < 5.0, "z = {z}");
        let shifted = (a.empirical - 1.05 * limit) / a.stderr;
        assert!(shifted.abs() > 5.0, "a 5% shift gives z = {shifted}");
        assert_eq!(s.comparisons, 1);
        assert_eq!(s.worst_z, z.abs());

        let dir = out.join("gmm");
        let stems: Vec<&str> = s
            .blocks
            .iter()
            .flat_map(|b| &b.figures)
            .map(|(stem, _)| stem.as_str())
            .collect();
        assert_eq!(
            stems,
            [
                "gmm-paper-contours",
                "gmm-paper-l2",
                "gmm-paper-loglik",
                "gmm-paper-distance",
                "gmm-paper-eigenvalues",
                "gmm-paper-weights",
                "gmm-sizes-l2",
                "gmm-sizes-l2-early",
                "gmm-error-kinds-l2",
            ]
        );
        for stem in &stems {
            for ext in ["svg", "png"] {
                let path = dir.join(format!("{stem}.{ext}"));
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                assert!(len > 1000, "{} has {len} bytes", path.display());
            }
        }

        // Every quantity at every generation.
        let list = experiments(Scale::Smoke, seed).unwrap();
        let expected: usize = list
            .iter()
            .map(|e| 9 * (e.spec.generations as usize + 1))
            .sum();
        let df = read_parquet(&dir.join("comparison.parquet")).unwrap();
        assert_eq!(df.height(), expected);
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(names, COLUMNS);
        assert_eq!(df.column("z").unwrap().null_count(), expected - 1);
        let csv = std::fs::read_to_string(dir.join("comparison.csv")).unwrap();
        assert_eq!(csv.lines().count(), expected + 1);
        for e in &list {
            assert!(csv.contains(&e.name), "{} missing", e.name);
        }
        assert!(
            s.markdown()
                .contains("paper's generation g is our n = g + 1")
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}
