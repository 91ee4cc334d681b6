//! Data strategies (what each generation is fitted to): replace (the paper), accumulate,
//! accumulate-subsample, mix:F and keep:F, compared on one figure per quantity, exact theory
//! (`collapse_analysis::strategy` and, in d dimensions, `collapse_analysis::mvn::strategy_theory`;
//! proofs/strategies.md) beside ensembles (`collapse_sim::gaussian` and `collapse_sim::mvn` with
//! the spec's strategy).

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure};
use crate::report::Scale;
use crate::section::{Block, Section, TextTable, render_figures, z_stats};
use crate::table::{ComparisonRow, comparison_frame, fmt_sig, write_frame};
use collapse_analysis::gaussian::{Feasibility, GaussianTheory, theory_at_precision};
use collapse_analysis::mvn::{MvnSpec, MvnStrategyTheory};
use collapse_analysis::strategy::{StrategyTheory, strategy_theory_at_precision};
use collapse_analysis::{Estimator, GaussianSpec, Schedule, Strategy};
use collapse_sim::gaussian::{EnsembleConfig, GaussianRun, MAX_TRACE, Method, simulate};
use collapse_sim::mvn::{MvnConfig, MvnMethod, MvnRun, max_subsample_chains};
use collapse_sim::stats::Summary;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Working precision of the theory (bits).
const PRECISION: u32 = 128;

/// Certified digits of the d-dimensional theory (the f64 tables need 17).
const MVN_DIGITS: u32 = 30;

/// The strategies compared, in figure order.
pub const STRATEGIES: [&str; 5] = [
    "replace",
    "accumulate",
    "accumulate-subsample",
    "mix:0.1",
    "keep:0.1",
];

/// (M, N, R) of a scale.
fn sizes(scale: Scale) -> (u64, u64, u64) {
    match scale {
        Scale::Smoke => (20, 60, 1_000),
        Scale::Default => (100, 1_000, 10_000),
        Scale::Paper => (100, 1_000, 100_000),
    }
}

/// (M, N, R) of the d-dimensional block at a scale. Its cost is about R N (O(d^3) per chain and
/// generation for `sufficient`, O(M d^2) for accumulate-subsample's `exact`).
fn mvn_sizes(scale: Scale) -> (u64, u64, u64) {
    match scale {
        Scale::Smoke => (20, 30, 400),
        Scale::Default => (50, 100, 2_000),
        Scale::Paper => (50, 100, 20_000),
    }
}

/// Dimension of the d-dimensional block.
pub const MVN_DIM: u64 = 10;

/// Sigma = diag(1, 2, ..., d) in the d-dimensional block: spread (condition number d) so that the
/// comparison checks that the moments scale with tr Sigma, not with d (every projection a^T x
/// is the 1-D process at sigma^2 = a^T Sigma a; proofs/strategies.md §10).
pub fn mvn_cov(dim: u64) -> Vec<f64> {
    (1..=dim).map(|j| j as f64).collect()
}

/// One strategy's experiment and its result.
pub struct StrategyOutcome {
    pub name: String,
    pub strategy: Strategy,
    pub theory: StrategyTheory,
    /// The full 1-D theory (E[W2^2], E[ln sigma_n^2], feasibility) for `replace`.
    pub replace_theory: Option<GaussianTheory>,
    pub run: GaussianRun,
    pub rows: Vec<ComparisonRow>,
    pub seconds: f64,
}

/// Whether a strategy needs every point drawn so far: `accumulate-subsample` subsamples them, so
/// it runs with the `exact` method only, chain by chain; every other strategy runs `sufficient`.
fn keeps_points(strategy: Strategy) -> bool {
    strategy == Strategy::AccumulateSubsample
}

pub fn method_for(strategy: Strategy) -> Method {
    if keeps_points(strategy) {
        Method::Exact
    } else {
        Method::Sufficient
    }
}

pub fn mvn_method_for(strategy: Strategy) -> MvnMethod {
    if keeps_points(strategy) {
        MvnMethod::Exact
    } else {
        MvnMethod::Sufficient
    }
}

/// `accumulate-subsample` keeps every chain's state per generation: its ensemble is capped at
/// `MAX_TRACE / (N + 1)` chains (about 20000 at N = 1000).
pub fn chains_for(strategy: Strategy, chains: u64, generations: u64) -> u64 {
    capped(strategy, chains, MAX_TRACE / (generations + 1))
}

/// As [`chains_for`] in d dimensions (`collapse_sim::mvn::max_subsample_chains`).
pub fn mvn_chains_for(strategy: Strategy, chains: u64, generations: u64) -> u64 {
    capped(strategy, chains, max_subsample_chains(generations))
}

fn capped(strategy: Strategy, chains: u64, cap: u64) -> u64 {
    if keeps_points(strategy) {
        chains.min(cap)
    } else {
        chains
    }
}

/// One strategy's d-dimensional experiment and its result.
pub struct MvnStrategyOutcome {
    pub name: String,
    pub strategy: Strategy,
    pub theory: MvnStrategyTheory,
    /// For `replace`, the exact 1-D theory of the projected process (its feasibility rules).
    pub projected: Option<GaussianTheory>,
    pub run: MvnRun,
    pub rows: Vec<ComparisonRow>,
    pub seconds: f64,
}

pub fn run_strategy(
    label: &str,
    samples: u64,
    generations: u64,
    chains: u64,
    seed: u64,
) -> Result<StrategyOutcome, ReportError> {
    let start = Instant::now();
    let strategy = Strategy::parse(label)?;
    let spec = GaussianSpec::new(
        Schedule::constant(samples),
        Estimator::Unbiased,
        1.0,
        generations,
    )?
    .with_strategy(strategy)?;
    let theory = strategy_theory_at_precision(&spec, PRECISION);
    let replace_theory =
        (strategy == Strategy::Replace).then(|| theory_at_precision(&spec, PRECISION));
    let chains = chains_for(strategy, chains, generations);
    let mut config = EnsembleConfig::new(chains, seed, method_for(strategy));
    config.progress = true;
    let run = simulate(&spec, &config)?;
    let name = format!("strategies-{}-m{samples}", label.replace(':', ""));
    let rows = compare(&name, &theory, replace_theory.as_ref(), &run);
    Ok(StrategyOutcome {
        name,
        strategy,
        theory,
        replace_theory,
        run,
        rows,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The d-dimensional experiment of one strategy: d = `cov.len()`, Sigma = diag(`cov`).
pub fn run_mvn_strategy(
    label: &str,
    cov: &[f64],
    samples: u64,
    generations: u64,
    chains: u64,
    seed: u64,
) -> Result<MvnStrategyOutcome, ReportError> {
    let start = Instant::now();
    let strategy = Strategy::parse(label)?;
    let spec = MvnSpec::new(
        cov.len() as u64,
        Schedule::constant(samples),
        Some(cov.to_vec()),
        generations,
    )?
    .with_strategy(strategy)?;
    let theory = collapse_analysis::mvn::strategy_theory(&spec, MVN_DIGITS)?;
    let projected =
        (strategy == Strategy::Replace).then(|| theory_at_precision(&spec.projected(), PRECISION));
    let mut config = MvnConfig::new(
        mvn_chains_for(strategy, chains, generations),
        seed,
        mvn_method_for(strategy),
    );
    config.progress = true;
    let run = collapse_sim::mvn::simulate(&spec, &config)?;
    let name = format!(
        "strategies-mvn-d{}-{}-m{samples}",
        spec.dim,
        label.replace(':', "")
    );
    let rows = compare_mvn(&name, &theory, projected.as_ref(), &run);
    Ok(MvnStrategyOutcome {
        name,
        strategy,
        theory,
        projected,
        run,
        rows,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Where no higher moments are known (every strategy but replace), a mean is taken as
/// estimable when the ensemble's own relative standard error is at most 10% (the first half of
/// `Feasibility::is_feasible`, with the ensemble's variance in place of the exact one).
fn self_feasible(mean: f64, stderr: f64) -> bool {
    mean == 0.0 || stderr.abs() <= 0.1 * mean.abs()
}

/// For `mix` and `keep` with an anchor of A >= 1 real points among M: a bound on E[a^4], where
/// a is the factor by which a large sigma_i^2 is carried into sigma_{i+1}^2. Of the M points,
/// S = M - A come from model i, so to leading order in a large sigma_i^2,
/// sigma_{i+1}^2 = sigma_i^2 (chi^2_{S-1} + (A/M) z^2) / (M - 1), and chi^2_{S-1} + (A/M) z^2 is
/// at most chi^2_S in law, whence E[a^4] <= E[(chi^2_S / (M-1))^4] =
/// S (S+2) (S+4) (S+6) / (M-1)^4. Below 1, the stationary law of sigma_n^2 (a random affine
/// recursion; Kesten, Goldie) has a finite fourth moment, so the ensemble's standard errors are
/// reliable; at or above 1, E[sigma_n^8] may grow like E[a^4]^n and the tail is as heavy as
/// replace's. None without an anchor.
pub fn anchored_fourth_moment_factor(strategy: Strategy, m: u64) -> Option<f64> {
    let anchor = strategy.fresh_real(m).max(strategy.kept(m));
    if anchor == 0 || !matches!(strategy, Strategy::Mix(_) | Strategy::Keep(_)) {
        return None;
    }
    let s = (m - anchor) as f64;
    let k = (m - 1) as f64;
    Some((0..4).map(|j| (s + 2.0 * f64::from(j)) / k).product())
}

/// Whether the means of a strategy without exact higher moments are estimable at generation n
/// with R chains: the ensemble's relative standard error at most 10%, and for an anchored
/// strategy E[a^4] < 1 or E[a^4]^n <= R/10 (the bound on the relative variance of the squares
/// stays within the toolkit's rule).
fn estimable(strategy: Strategy, m: u64, n: u64, chains: u64, mean: f64, stderr: f64) -> bool {
    let tail_ok = match anchored_fourth_moment_factor(strategy, m) {
        Some(f) if f >= 1.0 => f.powf(n as f64) <= 0.1 * chains as f64,
        _ => true,
    };
    tail_ok && self_feasible(mean, stderr)
}

/// What every comparison row of one run shares.
struct Pairing<'a> {
    experiment: &'a str,
    strategy: Strategy,
    method: &'static str,
    estimator: &'static str,
    schedule: &'a Schedule,
    chains: u64,
    seed: u64,
}

impl Pairing<'_> {
    /// Whether the mean `s` at generation n is estimable: the exact rule where one is known
    /// (replace), otherwise [`estimable`].
    fn ok(&self, exact: Option<bool>, n: u64, s: Summary) -> bool {
        exact.unwrap_or_else(|| {
            estimable(
                self.strategy,
                self.schedule.base,
                n,
                self.chains,
                s.mean,
                s.stderr,
            )
        })
    }

    fn row(
        &self,
        quantity: &str,
        n: u64,
        theory: Option<f64>,
        s: Summary,
        feasible: bool,
        compared: bool,
    ) -> ComparisonRow {
        // Generation 0 is the truth itself: nothing to compare.
        let z = match theory {
            Some(t) if compared && n > 0 && feasible && s.stderr > 0.0 && s.stderr.is_finite() => {
                Some((s.mean - t) / s.stderr)
            }
            _ => None,
        };
        ComparisonRow {
            experiment: self.experiment.to_string(),
            quantity: quantity.to_string(),
            generation: n,
            theory,
            empirical: s.mean,
            stderr: s.stderr,
            z,
            mc_feasible: feasible,
            method: self.method.to_string(),
            estimator: self.estimator.to_string(),
            schedule: self.schedule.label(),
            samples: self.schedule.base,
            chains: self.chains,
            seed: self.seed,
        }
    }
}

/// A value without a standard error (a quantile).
fn no_stderr(mean: f64) -> Summary {
    Summary {
        mean,
        stderr: f64::NAN,
    }
}

/// The long-form rows of one strategy.
pub fn compare(
    experiment: &str,
    th: &StrategyTheory,
    replace: Option<&GaussianTheory>,
    run: &GaussianRun,
) -> Vec<ComparisonRow> {
    let chains = run.config.chains;
    let p = Pairing {
        experiment,
        strategy: run.spec.strategy,
        method: run.config.method.name(),
        estimator: run.spec.estimator.name(),
        schedule: &run.spec.schedule,
        chains,
        seed: run.config.seed,
    };
    let mut rows = Vec::new();
    for (i, (t, e)) in th.rows.iter().zip(&run.rows).enumerate() {
        let n = t.n;
        let g = replace.map(|r| &r.rows[i]);
        let f: Option<&Feasibility> = g.map(|g| &g.feasibility);
        let (mse, var, w2) = (e.mean_sq_error, e.variance, e.w2_sq);
        rows.push(p.row(
            "mean_sq_error",
            n,
            Some(t.mean_sq_error.to_f64()),
            mse,
            p.ok(f.map(|f| f.mean_sq_error_ok(chains)), n, mse),
            true,
        ));
        rows.push(p.row(
            "variance",
            n,
            Some(t.expected_variance.to_f64()),
            var,
            p.ok(f.map(|f| f.variance_ok(chains)), n, var),
            true,
        ));
        let w2_ok = p.ok(f.map(|f| f.w2_sq_ok(chains)), n, w2);
        rows.push(p.row(
            "w2_sq",
            n,
            g.map(|g| g.expected_w2_sq.to_f64()),
            w2,
            w2_ok,
            true,
        ));
        // A bound, not an estimate of the mean: shown, never z-scored.
        rows.push(p.row(
            "w2_sq_lower_bound",
            n,
            Some(t.w2_sq_lower_bound.to_f64()),
            w2,
            w2_ok,
            false,
        ));
        let log_variance = Summary {
            mean: e.log_variance.mean,
            stderr: e.log_variance.stderr,
        };
        rows.push(p.row(
            "log_variance",
            n,
            g.map(|g| g.expected_log_variance.to_f64()),
            log_variance,
            true,
            true,
        ));
        rows.push(p.row(
            "median_variance",
            n,
            None,
            no_stderr(e.variance_quartiles[1]),
            true,
            false,
        ));
        rows.push(p.row(
            "median_w2_sq",
            n,
            None,
            no_stderr(e.w2_sq_quartiles[1]),
            true,
            false,
        ));
    }
    rows
}

/// The long-form rows of one strategy in d dimensions: E||mu_n - mu||^2 and E[tr Sigma_n]
/// (unscaled; the figures divide by tr Sigma). Each coordinate of mu_n - mu and each diagonal
/// entry of Sigma_n follows the projected 1-D process (at sigma^2 = Sigma_jj), and by Minkowski
/// the relative variance of a sum of such entries is at most that of one: the 1-D rules
/// (replace's exact `Feasibility` of the projected spec, [`estimable`] for the others) are a
/// conservative guide here.
pub fn compare_mvn(
    experiment: &str,
    th: &MvnStrategyTheory,
    projected: Option<&GaussianTheory>,
    run: &MvnRun,
) -> Vec<ComparisonRow> {
    let chains = run.config.chains;
    let p = Pairing {
        experiment,
        strategy: run.spec.strategy,
        method: run.config.method.name(),
        estimator: Estimator::Unbiased.name(),
        schedule: &run.spec.schedule,
        chains,
        seed: run.config.seed,
    };
    let mut rows = Vec::new();
    for (i, (t, e)) in th.rows.iter().zip(&run.rows).enumerate() {
        let n = t.n;
        let f = projected.map(|g| &g.rows[i].feasibility);
        rows.push(p.row(
            "mean_sq_error",
            n,
            Some(t.mean_sq_error.to_f64()),
            e.mean_sq_error,
            p.ok(f.map(|f| f.mean_sq_error_ok(chains)), n, e.mean_sq_error),
            true,
        ));
        rows.push(p.row(
            "expected_trace",
            n,
            Some(t.expected_trace.to_f64()),
            e.trace,
            p.ok(f.map(|f| f.variance_ok(chains)), n, e.trace),
            true,
        ));
    }
    rows
}

fn series<'a>(rows: &'a [ComparisonRow], quantity: &str) -> Vec<&'a ComparisonRow> {
    // Generation 0 is left out: the figures are on log axes and start from the truth.
    rows.iter()
        .filter(|r| r.quantity == quantity && r.generation > 0)
        .collect()
}

/// One strategy on a comparison figure: its label, its rows, and the factor its values are
/// drawn at.
struct Plotted<'a> {
    label: String,
    rows: &'a [ComparisonRow],
    scale: f64,
}

impl Plotted<'_> {
    /// The theory of `quantity`, solid in the colour of the figure's `i`-th ensemble.
    fn theory(&self, i: usize, quantity: &str, label: String) -> Curve {
        let s = series(self.rows, quantity);
        Curve {
            label,
            x: s.iter().map(|r| r.generation as f64).collect(),
            y: s.iter()
                .map(|r| r.theory.unwrap_or(f64::NAN) * self.scale)
                .collect(),
            kind: CurveKind::TheoryFor(i),
        }
    }

    fn empirical(&self, quantity: &str, label: String) -> Curve {
        let s = series(self.rows, quantity);
        Curve {
            label,
            x: s.iter().map(|r| r.generation as f64).collect(),
            y: s.iter().map(|r| r.empirical * self.scale).collect(),
            kind: CurveKind::Empirical {
                stderr: s
                    .iter()
                    .map(|r| {
                        if r.stderr.is_finite() {
                            r.stderr * self.scale
                        } else {
                            0.0
                        }
                    })
                    .collect(),
                feasible: s.iter().map(|r| r.mc_feasible).collect(),
            },
        }
    }
}

/// Theory and ensemble mean of `quantity` for every strategy, each pair in one colour.
fn paired(plotted: &[Plotted], quantity: &str) -> Vec<Curve> {
    let mut curves: Vec<Curve> = plotted
        .iter()
        .enumerate()
        .map(|(i, p)| p.theory(i, quantity, format!("{}: theory", p.label)))
        .collect();
    curves.extend(
        plotted
            .iter()
            .map(|p| p.empirical(quantity, format!("{}: ensemble mean", p.label))),
    );
    curves
}

/// A comparison figure on a log axis, as (file stem, figure).
fn comparison_figure(stem: &str, title: String, y: &str, curves: Vec<Curve>) -> (String, Figure) {
    (
        format!("strategies-{stem}"),
        Figure {
            title,
            x_label: "generation n".into(),
            y_label: y.into(),
            log_y: true,
            curves,
        },
    )
}

/// The four comparison figures: E[(mu_n - mu)^2], E[sigma_n^2], the median of sigma_n^2 and
/// E[W2^2], every strategy on each, theory in the colour of its simulation.
pub fn figures(outcomes: &[StrategyOutcome], m: u64, chains: u64) -> Vec<(String, Figure)> {
    let plotted: Vec<Plotted> = outcomes
        .iter()
        .map(|o| Plotted {
            label: o.strategy.label(),
            rows: &o.rows,
            scale: 1.0,
        })
        .collect();
    let fig = |stem: &str, what: &str, y: &str, curves: Vec<Curve>| {
        comparison_figure(
            stem,
            format!("{what} by data strategy: M={m}, up to {chains} chains"),
            y,
            curves,
        )
    };
    // Theory of E[W2^2] and E[ln sigma_n^2] exists for replace only.
    let with_theory = || {
        plotted
            .iter()
            .enumerate()
            .filter(|&(i, _)| outcomes[i].replace_theory.is_some())
    };
    let mut medians: Vec<Curve> = with_theory()
        .map(|(i, p)| {
            let mut c = p.theory(
                i,
                "log_variance",
                format!("{}: exp E[ln sigma_n^2] (theory, ~ the median)", p.label),
            );
            c.y = c.y.iter().map(|v| v.exp()).collect();
            c
        })
        .collect();
    medians.extend(
        plotted
            .iter()
            .map(|p| p.empirical("median_variance", format!("{}: ensemble median", p.label))),
    );
    let mut w2: Vec<Curve> = with_theory()
        .map(|(i, p)| p.theory(i, "w2_sq", format!("{}: theory E[W2^2]", p.label)))
        .collect();
    w2.extend(
        plotted
            .iter()
            .map(|p| p.empirical("w2_sq", format!("{}: ensemble mean", p.label))),
    );
    vec![
        fig(
            "mean_sq_error",
            "E[(mu_n - mu)^2]",
            "E[(mu_n - mu)^2]",
            paired(&plotted, "mean_sq_error"),
        ),
        fig(
            "variance",
            "E[sigma_n^2]",
            "E[sigma_n^2]",
            paired(&plotted, "variance"),
        ),
        fig(
            "median_variance",
            "median sigma_n^2",
            "median sigma_n^2",
            medians,
        ),
        fig("w2_sq", "E[W2^2]", "W2^2", w2),
    ]
}

/// The two d-dimensional figures, E||mu_n - mu||^2 / tr Sigma and E[tr Sigma_n] / tr Sigma, every
/// strategy on each, theory in the colour of its simulation.
pub fn mvn_figures(outcomes: &[MvnStrategyOutcome], m: u64, chains: u64) -> Vec<(String, Figure)> {
    let plotted: Vec<Plotted> = outcomes
        .iter()
        .map(|o| Plotted {
            label: o.strategy.label(),
            rows: &o.rows,
            scale: 1.0 / o.run.spec.cov_diag.iter().sum::<f64>(),
        })
        .collect();
    let d = outcomes.first().map_or(0, |o| o.run.spec.dim);
    let fig = |stem: &str, what: &str, quantity: &str| {
        comparison_figure(
            stem,
            format!("{what} by data strategy, d = {d}: M={m}, up to {chains} chains"),
            what,
            paired(&plotted, quantity),
        )
    };
    vec![
        fig(
            "mvn-mean_sq_error",
            "E||mu_n - mu||^2 / tr Sigma",
            "mean_sq_error",
        ),
        fig("mvn-trace", "E[tr Sigma_n] / tr Sigma", "expected_trace"),
    ]
}

/// What each strategy fits generation i+1 to.
fn describe(strategy: Strategy, m: u64) -> String {
    match strategy {
        Strategy::Replace => format!("M = {m} draws of model i (the paper)"),
        Strategy::Accumulate => "every point drawn so far, the real ones included".into(),
        Strategy::AccumulateSubsample => {
            format!("M = {m} points subsampled from everything drawn so far")
        }
        Strategy::Mix(_) => format!(
            "{} fresh real points and {} of model i",
            strategy.fresh_real(m),
            m - strategy.fresh_real(m)
        ),
        Strategy::Keep(_) => format!(
            "the same {} points of the real sample and {} of model i",
            strategy.kept(m),
            m - strategy.kept(m)
        ),
    }
}

fn text_table(outcomes: &[StrategyOutcome], m: u64) -> TextTable {
    let header = [
        "strategy",
        "generation i+1 is fitted to",
        "method",
        "E[W2^2] bounded",
        "stationary E[(mu-mu)^2], E[sigma^2]",
        "n",
        "E[(mu_n - mu)^2]: theory / ensemble (z)",
        "E[sigma_n^2]: theory / ensemble (z)",
        "median sigma_n^2",
        "ensemble mean W2^2_n",
    ];
    let cell = |o: &StrategyOutcome, q: &str| {
        let r = o
            .rows
            .iter()
            .rev()
            .find(|r| r.quantity == q)
            .expect("every quantity has a row");
        let z =
            r.z.map_or("not compared".to_string(), |z| format!("z = {z:.2}"));
        format!(
            "{} / {} ± {} ({z})",
            fmt_sig(r.theory.unwrap_or(f64::NAN)),
            fmt_sig(r.empirical),
            fmt_sig(r.stderr)
        )
    };
    let rows = outcomes
        .iter()
        .map(|o| {
            let last = o.run.rows.last().expect("N >= 1");
            vec![
                o.strategy.label(),
                describe(o.strategy, m),
                o.run.config.method.name().to_string(),
                match o.theory.bounded {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "not determined".into(),
                },
                o.theory.stationary.as_ref().map_or("—".into(), |s| {
                    format!(
                        "{}, {}",
                        s.mean_sq_error.to_decimal(8),
                        s.expected_variance.to_decimal(8)
                    )
                }),
                last.n.to_string(),
                cell(o, "mean_sq_error"),
                cell(o, "variance"),
                fmt_sig(last.variance_quartiles[1]),
                format!(
                    "{} ± {}",
                    fmt_sig(last.w2_sq.mean),
                    fmt_sig(last.w2_sq.stderr)
                ),
            ]
        })
        .collect();
    TextTable {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

pub const INTRO: &str = "What each generation of the 1-D Gaussian (unbiased estimator, sigma = 1, constant M) is fitted to: `replace` (the paper: only M draws of the previous model), `accumulate` (everything drawn so far, the real data included; Gerstgrasser et al. 2024), `accumulate-subsample` (M points drawn from everything so far; Kazdan et al. 2024), `mix:F` (a fraction F of every generation's M points is fresh real data) and `keep:F` (the same fraction F of the original real sample kept in every generation, as in the paper's language-model runs). Theory (collapse-analysis, proofs/strategies.md): E[(mu_n - mu)^2] and E[sigma_n^2] from exact linear recursions, the stationary values of mix and keep, and whether E[W2^2] stays bounded; E[W2^2] itself and E[ln sigma_n^2] in closed form for replace only (for the others E[(mu_n - mu)^2] is the lower bound on E[W2^2]). Simulation: `sufficient` ensembles (`exact` for accumulate-subsample, which keeps every point). For replace, feasibility of the means is the exact rule of the Gaussian section; for the others (no higher moments known) a mean is z-scored when its ensemble's relative standard error is at most 10%, and for mix and keep also while the fourth moment of sigma_n^2 is bounded: their sigma_n^2 follows a random affine recursion whose factor a has E[a^4] <= S(S+2)(S+4)(S+6)/(M-1)^4 with S = M - round(F M) model points; below 1 the stationary law has a finite fourth moment, otherwise the comparison stops once E[a^4]^n > R/10 (with few anchor points the tail is as heavy as replace's). A second block runs the same five strategies for the d-dimensional Gaussian (collapse-sim mvn ensembles) against its theory, the 1-D moments scaled by tr Sigma, under the same rules.";

/// "label s seconds, c compared pairs, worst |z| = w" for the blocks' texts.
fn timing(label: &str, seconds: f64, rows: &[ComparisonRow]) -> String {
    let (c, w) = z_stats(rows);
    format!(
        "{label} {} s, {c} compared pairs, worst |z| = {w:.2}",
        fmt_sig((seconds * 10.0).round() / 10.0)
    )
}

/// The d-dimensional block: every strategy at d = `MVN_DIM`, Sigma = diag(1, ..., d).
fn mvn_block(
    dir: &Path,
    scale: Scale,
    seed: u64,
) -> Result<(Block, Vec<MvnStrategyOutcome>), ReportError> {
    let (m, n, r) = mvn_sizes(scale);
    let cov = mvn_cov(MVN_DIM);
    let mut outcomes = Vec::new();
    for label in STRATEGIES {
        eprintln!("collapse report: running strategies mvn {label} ...");
        outcomes.push(run_mvn_strategy(label, &cov, m, n, r, seed)?);
    }
    let figures = render_figures(dir, mvn_figures(&outcomes, m, r))?;
    let subsample = mvn_chains_for(Strategy::AccumulateSubsample, r, n);
    let parts: Vec<String> = outcomes
        .iter()
        .map(|o| timing(&o.strategy.label(), o.seconds, &o.rows))
        .collect();
    let text = format!(
        "d = {MVN_DIM}, Sigma = diag(1, 2, ..., {MVN_DIM}) (tr Sigma = {}; spread so that the comparison checks the scaling by tr Sigma, not by d), M = {m}, N = {n}, R = {r} chains per strategy{}, seed {seed}; `sufficient` ensembles, `exact` for accumulate-subsample. Theory: the 1-D moments at sigma = 1 times tr Sigma (every projection a^T x is the 1-D process; proofs/strategies.md §10), so the curves divided by tr Sigma are those of the 1-D figures at the same M. Each coordinate follows the projected 1-D process, so the 1-D rules decide what is z-scored (conservatively: the relative variance of a sum of coordinates is at most that of one). Per strategy: {}.",
        fmt_sig(cov.iter().sum()),
        if subsample < r {
            format!(" ({subsample} for accumulate-subsample)")
        } else {
            String::new()
        },
        parts.join("; ")
    );
    let block = Block {
        name: "d-dimensional Gaussian (mvn)".into(),
        text,
        text_table: None,
        rows: Vec::new(),
        figures,
    };
    Ok((block, outcomes))
}

/// Runs every strategy in 1-D and in d dimensions; writes `<out>/strategies/comparison.*` and
/// the figures.
pub fn section(scale: Scale, out_dir: &Path, seed: u64) -> Result<Section, ReportError> {
    let start = Instant::now();
    let dir = out_dir.join("strategies");
    crate::report::create_dir(&dir)?;
    let (m, n, r) = sizes(scale);
    let mut outcomes = Vec::new();
    for label in STRATEGIES {
        eprintln!("collapse report: running strategies {label} ...");
        outcomes.push(run_strategy(label, m, n, r, seed)?);
    }
    let figures = render_figures(&dir, figures(&outcomes, m, r))?;
    let subsample = chains_for(Strategy::AccumulateSubsample, r, n);
    let mut text = format!(
        "M = {m}, N = {n}, R = {r} chains per strategy{}, seed {seed}. Per strategy: ",
        if subsample < r {
            format!(" ({subsample} for accumulate-subsample, which keeps every chain's trace)")
        } else {
            String::new()
        }
    );
    let parts: Vec<String> = outcomes
        .iter()
        .map(|o| timing(&o.strategy.label(), o.seconds, &o.rows))
        .collect();
    let _ = write!(
        text,
        "{}. Under replace the mean of sigma_n^2 is carried by rare chains once n >> M (hollow grey circles, not z-scored) while the median collapses; the other strategies keep sigma_n^2 near sigma^2 (accumulate-subsample only slowly drifts: its E[sigma_n^2] grows like a small power of n).",
        parts.join("; ")
    );
    let (mvn, mvn_outcomes) = mvn_block(&dir, scale, seed)?;
    let all: Vec<ComparisonRow> = outcomes
        .iter()
        .flat_map(|o| o.rows.iter())
        .chain(mvn_outcomes.iter().flat_map(|o| o.rows.iter()))
        .cloned()
        .collect();
    let mut df = comparison_frame(&all)?;
    write_frame(
        &mut df,
        &dir.join("comparison.parquet"),
        &dir.join("comparison.csv"),
    )?;
    let blocks = vec![
        Block {
            name: "1-D Gaussian: every strategy on one figure per quantity".into(),
            text,
            text_table: Some(text_table(&outcomes, m)),
            rows: Vec::new(),
            figures,
        },
        mvn,
    ];
    Ok(Section::compared(
        ("strategies", "Data strategies", INTRO),
        blocks,
        outcomes.len() + mvn_outcomes.len(),
        &all,
        start,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_agrees_with_its_theory() {
        let outcomes: Vec<StrategyOutcome> = STRATEGIES
            .iter()
            .map(|s| run_strategy(s, 20, 15, 2000, 7).unwrap())
            .collect();
        for o in &outcomes {
            let (compared, worst) = z_stats(&o.rows);
            assert!(compared > 0, "{}", o.name);
            assert!(worst < 5.0, "{}: worst |z| {worst}", o.name);
        }
        // Mixing in real data keeps E[sigma_n^2] near 1 and has a stationary point.
        assert!(outcomes[3].theory.stationary.is_some());
        assert_eq!(outcomes[1].theory.bounded, Some(true));
        assert_eq!(outcomes[0].theory.bounded, Some(false));
        assert_eq!(outcomes[2].run.config.method, Method::Exact);
        let figs = figures(&outcomes, 20, 2000);
        assert_eq!(figs.len(), 4);
        // Each paired figure has a theory line and an ensemble per strategy.
        assert_eq!(figs[0].1.curves.len(), 10);
    }

    fn mvn_outcomes() -> Vec<MvnStrategyOutcome> {
        let cov = mvn_cov(4);
        STRATEGIES
            .iter()
            .map(|s| run_mvn_strategy(s, &cov, 20, 12, 2000, 7).unwrap())
            .collect()
    }

    #[test]
    fn every_strategy_agrees_with_its_theory_in_d_dimensions() {
        let outcomes = mvn_outcomes();
        for o in &outcomes {
            let (compared, worst) = z_stats(&o.rows);
            assert!(compared > 0, "{}", o.name);
            assert!(worst < 5.0, "{}: worst |z| {worst}", o.name);
            let expected = mvn_method_for(o.strategy);
            assert_eq!(o.run.config.method, expected, "{}", o.name);
        }
        assert_eq!(outcomes[2].run.config.method, MvnMethod::Exact);
        let figs = mvn_figures(&outcomes, 20, 2000);
        assert_eq!(figs.len(), 2);
        for (_, fig) in &figs {
            // A theory line and an ensemble per strategy, the theory in its ensemble's colour.
            assert_eq!(fig.curves.len(), 10);
            for (i, c) in fig.curves[..5].iter().enumerate() {
                assert!(matches!(c.kind, CurveKind::TheoryFor(j) if j == i));
                assert_eq!(c.x.len(), 12);
            }
            assert!(
                fig.curves[5..]
                    .iter()
                    .all(|c| matches!(c.kind, CurveKind::Empirical { .. }))
            );
        }
        // Divided by tr Sigma (10 at d = 4), replace's E[tr Sigma_n] stays at 1 and E||mu_n - mu||^2
        // is n / M, the 1-D values.
        let trace = &figs[1].1.curves[0];
        assert!(trace.y.iter().all(|&v| (v - 1.0).abs() < 1e-12));
        let mse = &figs[0].1.curves[0];
        assert!((mse.y[11] - 12.0 / 20.0).abs() < 1e-12);
    }

    /// A theory off by 5% (Sigma scaled by 1.05) is rejected: the comparison can fail.
    #[test]
    fn d_dimensional_comparison_rejects_a_shifted_theory() {
        for o in mvn_outcomes() {
            let cov: Vec<f64> = o.run.spec.cov_diag.iter().map(|v| v * 1.05).collect();
            let spec = MvnSpec::new(
                cov.len() as u64,
                o.run.spec.schedule.clone(),
                Some(cov),
                o.run.spec.generations,
            )
            .unwrap()
            .with_strategy(o.strategy)
            .unwrap();
            let shifted = collapse_analysis::mvn::strategy_theory(&spec, MVN_DIGITS).unwrap();
            let rows = compare_mvn(&o.name, &shifted, o.projected.as_ref(), &o.run);
            let (_, worst) = z_stats(&rows);
            assert!(worst > 5.0, "{}: worst |z| {worst}", o.name);
        }
    }

    #[test]
    fn anchored_tails() {
        // M = 20, K = 2: S = 18, 18*20*22*24 / 19^4 = 1.46 (heavy); M = 100, K = 10: 0.78.
        let f = |s: &str, m| anchored_fourth_moment_factor(Strategy::parse(s).unwrap(), m);
        assert!((f("keep:0.1", 20).unwrap() - 190_080.0 / 130_321.0).abs() < 1e-12);
        assert!(f("mix:0.1", 100).unwrap() < 0.8);
        assert_eq!(f("mix:0", 100), None);
        assert_eq!(f("accumulate", 100), None);
        assert!(!estimable(Strategy::Keep(0.1), 20, 40, 1000, 0.6, 0.01));
        assert!(estimable(Strategy::Keep(0.1), 100, 1000, 1000, 0.6, 0.01));
    }
}
