//! The d-dimensional Gaussian experiments: exact theory (`collapse_analysis::mvn`, Bartlett
//! forms) beside ensembles (`collapse_sim::mvn`), quantity by quantity, generation by
//! generation, with a z-score wherever the Monte Carlo mean can estimate the theory at the run's
//! size; and the shape of Sigma_n (its largest and smallest eigenvalues) against the Lyapunov
//! exponents.

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure};
use crate::report::Scale;
use crate::section::{Block, Section, render_figures, z_stats};
use crate::table::{ComparisonRow, comparison_frame, fmt_sig, write_frame};
use collapse_analysis::Schedule;
use collapse_analysis::gaussian::Feasibility;
use collapse_analysis::mvn::{MvnSpec, MvnTheory, theory_at_precision};
use collapse_sim::mvn::{MvnConfig, MvnMethod, MvnRun, simulate};
use collapse_sim::stats::Summary;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Working precision of the theory (bits): far more than the f64 tables need.
const PRECISION: u32 = 128;

/// One experiment: a spec, an ensemble, and a name for its files.
#[derive(Debug, Clone)]
pub struct MvnExperiment {
    pub name: String,
    pub spec: MvnSpec,
    pub config: MvnConfig,
}

impl MvnExperiment {
    pub fn new(spec: MvnSpec, method: MvnMethod, chains: u64, seed: u64) -> MvnExperiment {
        let name = format!(
            "mvn-d{}-{}-{}-m{}",
            spec.dim,
            method.name(),
            spec.schedule.label().replace(':', ""),
            spec.schedule.base
        );
        let mut config = MvnConfig::new(chains, seed, method);
        config.progress = true;
        MvnExperiment { name, spec, config }
    }
}

/// d, M, the schedule, Sigma's diagonal (`None`: the identity) and N as a spec.
pub fn spec(
    dim: u64,
    samples: u64,
    schedule: &str,
    cov: Option<Vec<f64>>,
    generations: u64,
) -> Result<MvnSpec, ReportError> {
    Ok(MvnSpec::new(
        dim,
        Schedule::parse(Some(samples), schedule)?,
        cov,
        generations,
    )?)
}

/// The result of one experiment.
pub struct MvnOutcome {
    pub experiment: MvnExperiment,
    pub theory: MvnTheory,
    pub run: MvnRun,
    pub feasibility: Vec<MvnFeasibility>,
    pub rows: Vec<ComparisonRow>,
    pub seconds: f64,
}

impl MvnOutcome {
    /// Largest |z| among the compared pairs.
    pub fn worst_z(&self) -> f64 {
        z_stats(&self.rows).1
    }
}

/// Predicted relative variances (Var X / (E X)^2) of the per-chain quantities at one generation,
/// from the exact second moments of the theory. A mean over R chains estimates E X when the
/// toolkit's rule holds (`Feasibility::is_feasible`: relative variance <= R/100 and that of X^2
/// <= R/10); the relative variance of X^2, which needs fourth moments, is taken as that of a
/// lognormal with X's relative variance v: (1 + v)^4 - 1 (exact for a lognormal, and for the
/// 1-D case to first order in n/M).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MvnFeasibility {
    pub n: u64,
    /// tr Sigma_n: E (tr Sigma_n)^2 / (tr Sigma)^2 - 1 (exact).
    pub trace: f64,
    /// ||mu_n - mu||^2: exact. Given the path of Sigma_i, mu_n - mu is normal with covariance
    /// V_n = sum_{i<n} Sigma_i / M_i, so E||mu_n - mu||^4 = E (tr V_n)^2 + 2 E tr(V_n^2), and by
    /// the martingale property E[Sigma_j | Sigma_i] = Sigma_i (j >= i) both are sums of the
    /// theory's b_i = E (tr Sigma_i)^2 and a_i = E tr(Sigma_i^2).
    pub mean_sq_error: f64,
    /// (tr Sigma_n)^2: as a lognormal, (1 + trace)^4 - 1.
    pub square_of_trace: f64,
    /// tr(Sigma_n^2) and ||Sigma_n - Sigma||_F^2 (whose large values are those of tr(Sigma_n^2)):
    /// three times the lognormal value. The factor is calibrated against ensembles of 2e5
    /// chains (d = 3, Sigma = diag(2, 1, 0.5), M = 20 and d = 10, Sigma = I, M = 100, n <= 15,
    /// where those ensembles are reliable themselves): the lognormal value alone underestimates
    /// these two by up to 3x, tr(Sigma_n^2) being dominated by the largest eigenvalue; the test
    /// `predicted_relative_variances_match_large_ensembles` keeps it honest.
    pub trace_of_square: f64,
}

fn tail(rv: f64) -> f64 {
    (1.0 + rv).powi(4) - 1.0
}

fn feasible(rv: f64, chains: u64) -> bool {
    Feasibility::is_feasible(rv, tail(rv), chains)
}

impl MvnFeasibility {
    /// Whether the ensemble mean of theory key `key` is estimable with `chains` chains.
    pub fn ok(&self, key: &str, chains: u64) -> bool {
        match key {
            "expected_log_det" | "var_log_det" => true,
            "mean_sq_error" => feasible(self.mean_sq_error, chains),
            "expected_trace" => feasible(self.trace, chains),
            "expected_square_of_trace" => feasible(self.square_of_trace, chains),
            "expected_trace_of_square" | "frobenius_sq_error" => {
                feasible(self.trace_of_square, chains)
            }
            // W2^2 <= ||mu_n - mu||^2 + tr Sigma_n + tr Sigma (the Bures term is at most the sum
            // of the traces): estimable where both means are.
            "expected_w2_sq" => {
                feasible(self.mean_sq_error, chains) && feasible(self.trace, chains)
            }
            _ => true,
        }
    }
}

/// Per generation, the predicted relative variances (see [`MvnFeasibility`]).
pub fn feasibility(theory: &MvnTheory) -> Vec<MvnFeasibility> {
    let spec = &theory.spec;
    let trace: f64 = spec.cov_diag.iter().sum();
    let sizes = spec.sample_sizes();
    // P = E (tr V_n)^2, Q = E tr(V_n^2); bs = sum_{i<n} b_i / M_i, as = sum_{i<n} a_i / M_i;
    // s = S_n.
    let (mut p, mut q, mut bs, mut a_s, mut s) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut out = Vec::with_capacity(theory.rows.len());
    for row in &theory.rows {
        let a = row.expected_trace_of_square.to_f64();
        let b = row.expected_square_of_trace.to_f64();
        let rv_trace = (b / (trace * trace) - 1.0).max(0.0);
        let mean = trace * s;
        let rv_mse = if row.n == 0 {
            0.0
        } else {
            ((p + 2.0 * q) / (mean * mean) - 1.0).max(0.0)
        };
        let square_of_trace = tail(rv_trace);
        out.push(MvnFeasibility {
            n: row.n,
            trace: rv_trace,
            mean_sq_error: rv_mse,
            square_of_trace,
            trace_of_square: 3.0 * square_of_trace,
        });
        if let Some(&m) = sizes.get(row.n as usize) {
            let inv = 1.0 / m as f64;
            // V_{n+1} = V_n + Sigma_n / M_n.
            p += 2.0 * bs * inv + b * inv * inv;
            q += 2.0 * a_s * inv + a * inv * inv;
            bs += b * inv;
            a_s += a * inv;
            s += inv;
        }
    }
    out
}

/// Theory at 128 bits and the ensemble.
pub fn run_experiment(experiment: &MvnExperiment) -> Result<MvnOutcome, ReportError> {
    let start = Instant::now();
    let theory = theory_at_precision(&experiment.spec, PRECISION);
    let run = simulate(&experiment.spec, &experiment.config)?;
    let feas = feasibility(&theory);
    let rows = compare(&experiment.name, &theory, &run, &feas);
    Ok(MvnOutcome {
        experiment: experiment.clone(),
        theory,
        run,
        feasibility: feas,
        rows,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// ln of the largest and smallest eigenvalue of Sigma (diagonal).
fn extreme_log_eigenvalues(spec: &MvnSpec) -> (f64, f64) {
    let max = spec.cov_diag.iter().copied().fold(f64::MIN, f64::max);
    let min = spec.cov_diag.iter().copied().fold(f64::MAX, f64::min);
    (max.ln(), min.ln())
}

/// The Lyapunov exponents as f64 (largest first), for a constant schedule.
fn exponents(theory: &MvnTheory) -> Option<Vec<f64>> {
    theory
        .lyapunov_exponents
        .as_ref()
        .map(|v| v.iter().map(|b| b.to_f64()).collect())
}

/// Slope of a per-generation mean between generations n1 < n2, with a conservative standard
/// error (the two means share chains and are positively correlated, so the variance of their
/// difference is at most the sum of their variances).
fn slope(a: Summary, b: Summary, n1: u64, n2: u64) -> (f64, f64) {
    let gap = (n2 - n1) as f64;
    (
        (b.mean - a.mean) / gap,
        (a.stderr * a.stderr + b.stderr * b.stderr).sqrt() / gap,
    )
}

/// The long-form comparison rows of one theory/ensemble pair.
pub fn compare(
    experiment: &str,
    th: &MvnTheory,
    run: &MvnRun,
    feas: &[MvnFeasibility],
) -> Vec<ComparisonRow> {
    let chains = run.config.chains;
    let spec = &run.spec;
    let row = |quantity: &str,
               n: u64,
               theory: Option<f64>,
               s: Summary,
               feasible: bool,
               compared: bool| {
        // Generation 0 is the truth itself (every chain equal): nothing to compare.
        let z = match theory {
            Some(t) if compared && n > 0 && feasible && s.stderr > 0.0 && s.stderr.is_finite() => {
                Some((s.mean - t) / s.stderr)
            }
            _ => None,
        };
        ComparisonRow {
            experiment: experiment.to_string(),
            quantity: quantity.to_string(),
            generation: n,
            theory,
            empirical: s.mean,
            stderr: s.stderr,
            z,
            mc_feasible: feasible,
            method: run.config.method.name().to_string(),
            estimator: "unbiased".to_string(),
            schedule: spec.schedule.label(),
            samples: spec.schedule.base,
            chains,
            seed: run.config.seed,
        }
    };
    let lyapunov = exponents(th);
    let (ln_max0, ln_min0) = extreme_log_eigenvalues(spec);
    let mut rows = Vec::new();
    for ((t, e), f) in th.rows.iter().zip(&run.rows).zip(feas) {
        let n = t.n;
        let sim = e.named();
        let get = |key: &str| {
            sim.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, s)| *s)
                .expect("every theory key has a simulation counterpart")
        };
        for (key, ball) in t.named() {
            if key == "w2_sq_lower_bound" {
                // A bound, not an estimate of the mean: shown beside E[W2^2], never z-scored.
                rows.push(row(
                    key,
                    n,
                    Some(ball.to_f64()),
                    get("expected_w2_sq"),
                    f.ok("expected_w2_sq", chains),
                    false,
                ));
            } else {
                rows.push(row(
                    key,
                    n,
                    Some(ball.to_f64()),
                    get(key),
                    f.ok(key, chains),
                    true,
                ));
            }
        }
        rows.push(row(
            "expected_w2_sq",
            n,
            None,
            get("expected_w2_sq"),
            f.ok("expected_w2_sq", chains),
            false,
        ));
        let no_se = |x: f64| Summary {
            mean: x,
            stderr: f64::NAN,
        };
        rows.push(row(
            "median_w2_sq",
            n,
            None,
            no_se(e.w2_sq_quartiles[1]),
            true,
            false,
        ));
        for key in [
            "expected_log_lambda_max",
            "expected_log_lambda_min",
            "expected_log_condition",
        ] {
            rows.push(row(key, n, None, get(key), true, false));
        }
        if let Some(l) = &lyapunov {
            // The asymptotes ln lambda(Sigma) + n * exponent: slopes, not means; not z-scored.
            let (top, bottom) = (l[0], l[l.len() - 1]);
            rows.push(row(
                "log_lambda_max_asymptote",
                n,
                Some(ln_max0 + n as f64 * top),
                e.log_lambda_max,
                true,
                false,
            ));
            rows.push(row(
                "log_lambda_min_asymptote",
                n,
                Some(ln_min0 + n as f64 * bottom),
                e.log_lambda_min,
                true,
                false,
            ));
        }
    }
    // The simulated slopes of the mean extreme log eigenvalues over the second half of the run
    // against the top and bottom exponents (at generation N; not z-scored: E ln lambda_max
    // approaches n * exponent + c only as the eigenvalues separate, slowly when the exponents
    // are close).
    if let Some(l) = &lyapunov {
        let last = spec.generations;
        let half = last / 2;
        if half >= 1 && half < last {
            let (a, b) = (&run.rows[half as usize], &run.rows[last as usize]);
            for (key, exponent, sa, sb) in [
                (
                    "slope_log_lambda_max",
                    l[0],
                    a.log_lambda_max,
                    b.log_lambda_max,
                ),
                (
                    "slope_log_lambda_min",
                    l[l.len() - 1],
                    a.log_lambda_min,
                    b.log_lambda_min,
                ),
            ] {
                let (mean, stderr) = slope(sa, sb, half, last);
                rows.push(row(
                    key,
                    last,
                    Some(exponent),
                    Summary { mean, stderr },
                    true,
                    false,
                ));
            }
        }
    }
    rows
}

fn series<'a>(rows: &'a [ComparisonRow], quantity: &str) -> Vec<&'a ComparisonRow> {
    rows.iter().filter(|r| r.quantity == quantity).collect()
}

/// Generation 0 is left out of log-scale figures: there the squared errors are 0 (or rounding
/// noise) and would stretch the axis over decades.
fn on_axis<'a>(rows: &'a [ComparisonRow], quantity: &str, log: bool) -> Vec<&'a ComparisonRow> {
    series(rows, quantity)
        .into_iter()
        .filter(|r| !log || r.generation > 0)
        .collect()
}

fn theory_curve(
    rows: &[ComparisonRow],
    quantity: &str,
    label: &str,
    kind: CurveKind,
    log: bool,
) -> Curve {
    let s = on_axis(rows, quantity, log);
    Curve {
        label: label.to_string(),
        x: s.iter().map(|r| r.generation as f64).collect(),
        y: s.iter().map(|r| r.theory.unwrap_or(f64::NAN)).collect(),
        kind,
    }
}

fn empirical_curve(rows: &[ComparisonRow], quantity: &str, label: &str, log: bool) -> Curve {
    let s = on_axis(rows, quantity, log);
    Curve {
        label: label.to_string(),
        x: s.iter().map(|r| r.generation as f64).collect(),
        y: s.iter().map(|r| r.empirical).collect(),
        kind: CurveKind::Empirical {
            stderr: s
                .iter()
                .map(|r| if r.stderr.is_finite() { r.stderr } else { 0.0 })
                .collect(),
            feasible: s.iter().map(|r| r.mc_feasible).collect(),
        },
    }
}

/// The figures of one experiment: (file stem, figure).
pub fn figures(outcome: &MvnOutcome) -> Vec<(String, Figure)> {
    let rows = &outcome.rows;
    let e = &outcome.experiment;
    let schedule = if e.spec.schedule.is_constant() {
        String::new()
    } else {
        format!(" {}", e.spec.schedule.label())
    };
    let title = |what: &str| {
        format!(
            "{what}: d={} M={}{schedule} {}, {} chains",
            e.spec.dim,
            e.spec.schedule.base,
            e.config.method.name(),
            e.config.chains
        )
    };
    let fig = |stem: &str, what: &str, y_label: &str, log_y: bool, curves: Vec<Curve>| {
        (
            format!("{}-{stem}", e.name),
            Figure {
                title: title(what),
                x_label: "generation n".into(),
                y_label: y_label.into(),
                log_y,
                curves,
            },
        )
    };
    let t = |q: &str, label: &str, log: bool| theory_curve(rows, q, label, CurveKind::Theory, log);
    let b = |q: &str, label: &str, log: bool| theory_curve(rows, q, label, CurveKind::Bound, log);
    let m = |q: &str, label: &str, log: bool| empirical_curve(rows, q, label, log);
    let mut out = vec![
        fig(
            "log_det",
            "E[ln det Sigma_n]",
            "ln det Sigma_n",
            false,
            vec![
                t("expected_log_det", "theory (digamma sums)", false),
                m("expected_log_det", "ensemble mean", false),
            ],
        ),
        fig(
            "var_log_det",
            "Var[ln det Sigma_n]",
            "Var ln det Sigma_n",
            false,
            vec![
                t("var_log_det", "theory (trigamma sums)", false),
                m("var_log_det", "ensemble variance", false),
            ],
        ),
        fig(
            "mean_sq_error",
            "E||mu_n - mu||^2 and E[W2^2]",
            "squared distance",
            true,
            vec![
                t(
                    "mean_sq_error",
                    "theory E||mu_n-mu||^2 = tr(Sigma) sum 1/M_i = lower bound on E[W2^2]",
                    true,
                ),
                m("mean_sq_error", "ensemble mean ||mu_n-mu||^2", true),
                m(
                    "expected_w2_sq",
                    "ensemble mean W2^2 (exact per chain)",
                    true,
                ),
                m("median_w2_sq", "ensemble median W2^2", true),
            ],
        ),
        fig(
            "trace",
            "E[tr Sigma_n] = tr Sigma (a martingale)",
            "tr Sigma_n",
            false,
            vec![
                t("expected_trace", "theory tr Sigma", false),
                m("expected_trace", "ensemble mean", false),
            ],
        ),
        fig(
            "second_moments",
            "Wishart second moments",
            "second moment",
            true,
            vec![
                t("expected_trace_of_square", "theory E tr(Sigma_n^2)", true),
                t("expected_square_of_trace", "theory E (tr Sigma_n)^2", true),
                t(
                    "frobenius_sq_error",
                    "theory E||Sigma_n - Sigma||_F^2",
                    true,
                ),
                m("expected_trace_of_square", "mean tr(Sigma_n^2)", true),
                m("expected_square_of_trace", "mean (tr Sigma_n)^2", true),
                m("frobenius_sq_error", "mean ||Sigma_n - Sigma||_F^2", true),
            ],
        ),
    ];
    if outcome.theory.lyapunov_exponents.is_some() {
        // The volume (ln det / d, exact) and the shape: the extreme log eigenvalues drift apart at
        // the top and bottom Lyapunov exponents.
        let s = series(rows, "expected_log_det");
        let d = e.spec.dim as f64;
        let per_dim = Curve {
            label: "theory E[ln det Sigma_n] / d (mean log eigenvalue)".into(),
            x: s.iter().map(|r| r.generation as f64).collect(),
            y: s.iter().map(|r| r.theory.unwrap_or(f64::NAN) / d).collect(),
            kind: CurveKind::Theory,
        };
        out.push(fig(
            "eigenvalues",
            "shape: E ln lambda_max, E ln lambda_min",
            "ln eigenvalue of Sigma_n",
            false,
            vec![
                per_dim,
                b(
                    "log_lambda_max_asymptote",
                    "ln lambda_max(Sigma) + n * top Lyapunov exponent",
                    false,
                ),
                b(
                    "log_lambda_min_asymptote",
                    "ln lambda_min(Sigma) + n * bottom Lyapunov exponent",
                    false,
                ),
                m("expected_log_lambda_max", "mean ln lambda_max", false),
                m("expected_log_lambda_min", "mean ln lambda_min", false),
            ],
        ));
    }
    out
}

/// Sizes of a scale: ((N, R) of the long d = 3 run, (N, R) of the d = 3 exact run, (N, R) of the
/// d = 10 run, (N, R) of the d = 3 power:1.5 run).
fn sizes(scale: Scale) -> [(u64, u64); 4] {
    match scale {
        Scale::Smoke => [(30, 2_000), (10, 2_000), (20, 500), (30, 1_000)],
        Scale::Default => [(200, 20_000), (50, 20_000), (200, 4_000), (200, 10_000)],
        Scale::Paper => [(200, 200_000), (50, 200_000), (200, 40_000), (200, 100_000)],
    }
}

/// The experiments of a scale: d = 3, Sigma = diag(2, 1, 0.5), M = 20 with both methods (the
/// `sufficient` one for many generations), the same with M_i = ceil(20 (i+1)^1.5) (sum 1/M_i
/// converges: no collapse), and d = 10, Sigma = I, M = 100.
pub fn experiments(scale: Scale, seed: u64) -> Result<Vec<MvnExperiment>, ReportError> {
    let [long, exact, d10, power] = sizes(scale);
    let diag = || Some(vec![2.0, 1.0, 0.5]);
    Ok(vec![
        MvnExperiment::new(
            spec(3, 20, "constant", diag(), long.0)?,
            MvnMethod::Sufficient,
            long.1,
            seed,
        ),
        MvnExperiment::new(
            spec(3, 20, "constant", diag(), exact.0)?,
            MvnMethod::Exact,
            exact.1,
            seed,
        ),
        MvnExperiment::new(
            spec(3, 20, "power:1.5", diag(), power.0)?,
            MvnMethod::Sufficient,
            power.1,
            seed,
        ),
        MvnExperiment::new(
            spec(10, 100, "constant", None, d10.0)?,
            MvnMethod::Sufficient,
            d10.1,
            seed,
        ),
    ])
}

/// Quantities shown in the index tables (at the generations of `table_generations`).
const TABLE_QUANTITIES: [&str; 10] = [
    "mean_sq_error",
    "expected_trace",
    "expected_log_det",
    "var_log_det",
    "frobenius_sq_error",
    "expected_w2_sq",
    "expected_log_lambda_max",
    "expected_log_lambda_min",
    "slope_log_lambda_max",
    "slope_log_lambda_min",
];

/// The first generation from which the mean of `key` is not estimable, if any.
fn first_infeasible(o: &MvnOutcome, key: &str) -> Option<u64> {
    let chains = o.experiment.config.chains;
    o.feasibility
        .iter()
        .find(|f| !f.ok(key, chains))
        .map(|f| f.n)
}

fn header(o: &MvnOutcome) -> String {
    let e = &o.experiment;
    let th = &o.theory;
    let (compared, worst) = z_stats(&o.rows);
    let mut s = format!(
        "d = {}, Sigma = {}, schedule {}, M = {}, N = {}, R = {} chains, method {}, seed {}; runtime {:.1} s; {compared} compared pairs, worst |z| = {worst:.2}. ",
        e.spec.dim,
        e.spec.cov_label(),
        e.spec.schedule.label(),
        e.spec.schedule.base,
        e.spec.generations,
        e.config.chains,
        e.config.method.name(),
        e.config.seed,
        o.seconds,
    );
    if let Some(drift) = &th.log_det_drift {
        let _ = write!(
            s,
            "ln det Sigma_n drifts by {} per generation, so det Sigma_n -> 0 almost surely. ",
            fmt_sig(drift.to_f64())
        );
    } else if th.det_collapses_almost_surely {
        s.push_str("sum 1/M_i diverges: det Sigma_n -> 0 almost surely. ");
    } else {
        s.push_str("sum 1/M_i converges: det Sigma_n does not collapse. ");
    }
    if let Some(limit) = &th.mean_sq_error_limit {
        let _ = write!(
            s,
            "E||mu_n - mu||^2 stays bounded: limit {} (certified to {} digits). ",
            limit.to_decimal(limit.certified_digits().clamp(1, 12)),
            limit.certified_digits().min(40)
        );
    }
    if let Some(l) = exponents(th) {
        let list: Vec<String> = l.iter().map(|x| fmt_sig(*x)).collect();
        let _ = write!(s, "Lyapunov exponents: {}. ", list.join(", "));
        for (key, what) in [
            ("slope_log_lambda_max", "E ln lambda_max"),
            ("slope_log_lambda_min", "E ln lambda_min"),
        ] {
            if let Some(r) = o.rows.iter().find(|r| r.quantity == key) {
                let _ = write!(
                    s,
                    "Simulated slope of {what} over generations {}..{}: {} +- {} (exponent {}). ",
                    e.spec.generations / 2,
                    e.spec.generations,
                    fmt_sig(r.empirical),
                    fmt_sig(r.stderr),
                    fmt_sig(r.theory.unwrap_or(f64::NAN))
                );
            }
        }
    }
    let chains = e.config.chains;
    let mut notes = Vec::new();
    for (key, what) in [
        ("expected_trace", "E[tr Sigma_n]"),
        ("mean_sq_error", "E||mu_n - mu||^2"),
        ("expected_square_of_trace", "E (tr Sigma_n)^2"),
        (
            "expected_trace_of_square",
            "E tr(Sigma_n^2) and E||Sigma_n - Sigma||_F^2",
        ),
        ("expected_w2_sq", "E[W2^2]"),
    ] {
        if let Some(n) = first_infeasible(o, key) {
            notes.push(format!("{what} from generation {n}"));
        }
    }
    if notes.is_empty() {
        let _ = write!(
            s,
            "Every mean is estimable with {chains} chains at every generation."
        );
    } else {
        let _ = write!(
            s,
            "Not estimable by a mean over {chains} chains (heavy tails; shown as hollow grey circles, not z-scored): {}.",
            notes.join("; ")
        );
    }
    s
}

fn table_rows(o: &MvnOutcome) -> Vec<ComparisonRow> {
    let gens = crate::report::table_generations(o.experiment.spec.generations);
    TABLE_QUANTITIES
        .iter()
        .flat_map(|q| {
            o.rows
                .iter()
                .filter(|r| r.quantity == *q && (gens.contains(&r.generation)))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

pub const INTRO: &str = "Each generation of a d-dimensional Gaussian N(mu, Sigma) is re-fitted (sample mean and unbiased sample covariance) to M_i > d draws of the previous one. Theory (collapse-analysis, proofs/mvn.md): Bartlett's decomposition makes ln det Sigma_n a sum of independent log chi-squares (E and Var as digamma / trigamma sums), E||mu_n - mu||^2 = tr(Sigma) sum 1/M_i is the lower bound on E[W2^2], the Wishart second moments follow a linear recursion, and for constant M the log eigenvalues drift at the Lyapunov exponents psi((k-j)/2) + ln(2/k): the volume collapses and the shape degenerates (the condition number grows exponentially). Simulation: `sufficient` (Bartlett factor, O(d^3)) and `exact` (draw M vectors and fit), with W2 computed exactly per chain. Means carried by rare chains (the Wishart second moments, tr Sigma_n and ||mu_n - mu||^2 once n/M is large) are z-scored only where predicted estimable: the relative variances of tr Sigma_n and ||mu_n - mu||^2 are computed exactly from the Wishart second moments, those of the second moments as for a lognormal (times a factor 3 for tr(Sigma_n^2) and ||Sigma_n - Sigma||_F^2, calibrated against large ensembles), and those of the squares as for a lognormal; the ln det moments are always estimable. The eigenvalue slopes are asymptotic and shown, not z-scored.";

/// Runs the section's experiments, writes `<out>/mvn/comparison.{parquet,csv}` and the figures.
pub fn section(scale: Scale, out_dir: &Path, seed: u64) -> Result<Section, ReportError> {
    let start = Instant::now();
    let dir = out_dir.join("mvn");
    crate::report::create_dir(&dir)?;
    let mut outcomes = Vec::new();
    for e in experiments(scale, seed)? {
        eprintln!("collapse report: running {} ...", e.name);
        outcomes.push(run_experiment(&e)?);
    }
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
    for o in &outcomes {
        let figures = render_figures(&dir, figures(o))?;
        blocks.push(Block {
            name: o.experiment.name.clone(),
            text: header(o),
            text_table: None,
            rows: table_rows(o),
            figures,
        });
    }
    Ok(Section::compared(
        ("mvn", "Multivariate Gaussian (mvn)", INTRO),
        blocks,
        outcomes.len(),
        &all,
        start,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_experiment_agrees_and_has_every_quantity() {
        let s = spec(3, 20, "constant", Some(vec![2.0, 1.0, 0.5]), 12).unwrap();
        let e = MvnExperiment::new(s, MvnMethod::Sufficient, 4000, 5);
        let o = run_experiment(&e).unwrap();
        assert!(o.worst_z() < 5.0, "worst |z| {}", o.worst_z());
        for q in [
            "mean_sq_error",
            "expected_trace",
            "expected_log_det",
            "var_log_det",
            "frobenius_sq_error",
            "expected_w2_sq",
            "w2_sq_lower_bound",
            "expected_log_lambda_min",
            "log_lambda_max_asymptote",
            "slope_log_lambda_max",
        ] {
            assert!(o.rows.iter().any(|r| r.quantity == q), "{q}");
        }
        // ln det moments are always compared.
        assert!(
            o.rows
                .iter()
                .filter(|r| r.quantity == "expected_log_det" && r.generation > 0)
                .all(|r| r.z.is_some())
        );
        assert_eq!(figures(&o).len(), 6);
    }

    /// d = 1 against the 1-D module's exact feasibility (the trace is sigma_n^2 there).
    #[test]
    fn feasibility_matches_one_dimension() {
        use collapse_analysis::{Estimator, GaussianSpec};
        let (m, n) = (10u64, 30u64);
        let spec = MvnSpec::new(1, Schedule::constant(m), None, n).unwrap();
        let f = feasibility(&theory_at_precision(&spec, PRECISION));
        let g = GaussianSpec::new(Schedule::constant(m), Estimator::Unbiased, 1.0, n).unwrap();
        let gt = collapse_analysis::gaussian::theory_at_precision(&g, PRECISION);
        for (a, b) in f.iter().zip(&gt.rows) {
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1e-12);
            assert!(close(a.trace, b.feasibility.variance), "n = {}", a.n);
            assert!(
                close(a.mean_sq_error, b.feasibility.mean_sq_error),
                "n = {}: {} vs {}",
                a.n,
                a.mean_sq_error,
                b.feasibility.mean_sq_error
            );
        }
    }

    #[test]
    fn d10_experiment_runs_and_agrees() {
        let s = spec(10, 100, "constant", None, 8).unwrap();
        let e = MvnExperiment::new(s, MvnMethod::Sufficient, 1000, 9);
        let o = run_experiment(&e).unwrap();
        assert!(o.worst_z() < 5.0, "worst |z| {}", o.worst_z());
        // The exponents are ordered, so the extreme log eigenvalues separate.
        let last = &o.run.rows[8];
        assert!(last.log_lambda_max.mean > last.log_lambda_min.mean);
    }

    /// The predicted relative variances against those of ensembles of 50000 chains (R stderr^2
    /// / mean^2) at generations where such ensembles estimate them: the exact ones (trace, mean
    /// error) within 10%, the calibrated ones within a factor 0.5..4 (they may err on the safe
    /// side: too large a prediction only withholds a z-score).
    #[test]
    fn predicted_relative_variances_match_large_ensembles() {
        let chains = 50_000u64;
        for (d, m, cov) in [(3u64, 20u64, Some(vec![2.0, 1.0, 0.5])), (10, 100, None)] {
            let s = spec(d, m, "constant", cov, 8).unwrap();
            let o =
                run_experiment(&MvnExperiment::new(s, MvnMethod::Sufficient, chains, 11)).unwrap();
            for (f, r) in o.feasibility.iter().zip(&o.run.rows).skip(1) {
                let emp = |s: Summary| s.stderr * s.stderr * chains as f64 / (s.mean * s.mean);
                for (what, predicted, empirical, lo, hi) in [
                    ("trace", f.trace, emp(r.trace), 0.9, 1.1),
                    ("mse", f.mean_sq_error, emp(r.mean_sq_error), 0.9, 1.1),
                    ("sqtr", f.square_of_trace, emp(r.square_of_trace), 0.5, 4.0),
                    ("tr2", f.trace_of_square, emp(r.trace_of_square), 0.5, 4.0),
                    (
                        "frob",
                        f.trace_of_square,
                        emp(r.frobenius_sq_error),
                        0.5,
                        4.0,
                    ),
                ] {
                    let ratio = predicted / empirical;
                    assert!(
                        (lo..=hi).contains(&ratio),
                        "d={d} n={} {what}: predicted {predicted}, ensemble {empirical}",
                        f.n
                    );
                }
            }
        }
    }
}
