//! The Gaussian experiments: exact theory (`collapse_analysis::gaussian`) beside ensembles
//! (`collapse_sim::gaussian`), quantity by quantity, generation by generation, with a z-score
//! wherever the Monte Carlo mean can estimate the theory at the run's size.

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure};
use crate::table::ComparisonRow;
use collapse_analysis::gaussian::{GaussianTheory, theory};
use collapse_analysis::{Estimator, GaussianSpec, Schedule};
use collapse_sim::gaussian::{EnsembleConfig, GaussianRun, Method, simulate};

/// One experiment: a spec, an ensemble, and a name for its files.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub spec: GaussianSpec,
    pub config: EnsembleConfig,
}

impl Experiment {
    pub fn new(
        samples: u64,
        schedule: &str,
        estimator: Estimator,
        method: Method,
        generations: u64,
        chains: u64,
        seed: u64,
    ) -> Result<Experiment, ReportError> {
        let spec = GaussianSpec::new(
            Schedule::parse(Some(samples), schedule)?,
            estimator,
            1.0,
            generations,
        )?;
        let name = format!(
            "gaussian-{}-{}-{}-m{samples}",
            estimator.name(),
            method.name(),
            schedule.replace(':', "")
        );
        let mut config = EnsembleConfig::new(chains, seed, method);
        config.progress = true;
        Ok(Experiment { name, spec, config })
    }
}

/// The result of one experiment.
pub struct Outcome {
    pub experiment: Experiment,
    pub theory: GaussianTheory,
    pub run: GaussianRun,
    pub rows: Vec<ComparisonRow>,
    pub seconds: f64,
}

impl Outcome {
    /// Largest |z| among the compared (MC-feasible) pairs.
    pub fn worst_z(&self) -> f64 {
        self.rows
            .iter()
            .filter_map(|r| r.z)
            .map(f64::abs)
            .fold(0.0, f64::max)
    }
}

/// Theory at 17 digits (plenty for f64 tables) and the ensemble.
pub fn run_experiment(experiment: &Experiment) -> Result<Outcome, ReportError> {
    let start = std::time::Instant::now();
    let th = theory(&experiment.spec, 17)?;
    let run = simulate(&experiment.spec, &experiment.config)?;
    let rows = compare(&experiment.name, &th, &run);
    Ok(Outcome {
        experiment: experiment.clone(),
        theory: th,
        run,
        rows,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The long-form comparison rows of one theory/ensemble pair.
pub fn compare(experiment: &str, th: &GaussianTheory, run: &GaussianRun) -> Vec<ComparisonRow> {
    let chains = run.config.chains;
    let spec = &run.spec;
    let row = |quantity: &str,
               n: u64,
               theory: Option<f64>,
               empirical: f64,
               stderr: f64,
               feasible: bool| {
        let z = match theory {
            Some(t) if feasible && stderr > 0.0 && stderr.is_finite() => {
                Some((empirical - t) / stderr)
            }
            _ => None,
        };
        ComparisonRow {
            experiment: experiment.to_string(),
            quantity: quantity.to_string(),
            generation: n,
            theory,
            empirical,
            stderr,
            z,
            mc_feasible: feasible,
            method: run.config.method.name().to_string(),
            estimator: spec.estimator.name().to_string(),
            schedule: spec.schedule.label(),
            samples: spec.schedule.base,
            chains,
            seed: run.config.seed,
        }
    };
    let mut rows = Vec::new();
    for (t, e) in th.rows.iter().zip(&run.rows) {
        let n = t.n;
        let f = &t.feasibility;
        rows.push(row(
            "variance",
            n,
            Some(t.expected_variance.to_f64()),
            e.variance.mean,
            e.variance.stderr,
            f.variance_ok(chains),
        ));
        rows.push(row(
            "sigma",
            n,
            Some(t.expected_sigma.to_f64()),
            e.sigma.mean,
            e.sigma.stderr,
            f.sigma_ok(chains),
        ));
        rows.push(row(
            "log_variance",
            n,
            Some(t.expected_log_variance.to_f64()),
            e.log_variance.mean,
            e.log_variance.stderr,
            true,
        ));
        rows.push(row(
            "var_log_variance",
            n,
            Some(t.var_log_variance.to_f64()),
            e.log_variance.variance,
            e.log_variance.variance_stderr,
            true,
        ));
        rows.push(row(
            "mean_sq_error",
            n,
            Some(t.mean_sq_error.to_f64()),
            e.mean_sq_error.mean,
            e.mean_sq_error.stderr,
            f.mean_sq_error_ok(chains),
        ));
        rows.push(row(
            "w2_sq",
            n,
            Some(t.expected_w2_sq.to_f64()),
            e.w2_sq.mean,
            e.w2_sq.stderr,
            f.w2_sq_ok(chains),
        ));
        // The paper's bound is not an estimate of the mean: shown, never z-scored.
        rows.push(row(
            "w2_sq_lower_bound",
            n,
            Some(t.w2_sq_lower_bound.to_f64()),
            e.w2_sq.mean,
            e.w2_sq.stderr,
            false,
        ));
        let [q1, med, q3] = e.variance_quartiles;
        rows.push(row("q1_variance", n, None, q1, f64::NAN, true));
        rows.push(row("median_variance", n, None, med, f64::NAN, true));
        rows.push(row("q3_variance", n, None, q3, f64::NAN, true));
        rows.push(row(
            "median_w2_sq",
            n,
            None,
            e.w2_sq_quartiles[1],
            f64::NAN,
            true,
        ));
        rows.push(row(
            "collapsed_fraction",
            n,
            None,
            e.collapsed_fraction,
            f64::NAN,
            true,
        ));
    }
    rows
}

fn series<'a>(rows: &'a [ComparisonRow], quantity: &str) -> Vec<&'a ComparisonRow> {
    rows.iter().filter(|r| r.quantity == quantity).collect()
}

fn theory_curve(rows: &[ComparisonRow], quantity: &str, label: &str, kind: CurveKind) -> Curve {
    let s = series(rows, quantity);
    Curve {
        label: label.to_string(),
        x: s.iter().map(|r| r.generation as f64).collect(),
        y: s.iter().map(|r| r.theory.unwrap_or(f64::NAN)).collect(),
        kind,
    }
}

fn empirical_curve(rows: &[ComparisonRow], quantity: &str, label: &str) -> Curve {
    let s = series(rows, quantity);
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
pub fn figures(outcome: &Outcome) -> Vec<(String, Figure)> {
    let rows = &outcome.rows;
    let e = &outcome.experiment;
    let title = |what: &str| {
        format!(
            "{what}: {} M={} {}, {} chains",
            e.spec.estimator.name(),
            e.spec
                .schedule
                .label()
                .replace("constant", &e.spec.schedule.base.to_string()),
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
    vec![
        fig(
            "variance",
            "E[sigma_n^2]",
            "sigma_n^2",
            true,
            vec![
                theory_curve(rows, "variance", "theory E[sigma_n^2]", CurveKind::Theory),
                empirical_curve(rows, "variance", "ensemble mean"),
                empirical_curve(rows, "median_variance", "ensemble median"),
            ],
        ),
        fig(
            "log_variance",
            "E[ln sigma_n^2]",
            "ln sigma_n^2",
            false,
            vec![
                theory_curve(
                    rows,
                    "log_variance",
                    "theory E[ln sigma_n^2]",
                    CurveKind::Theory,
                ),
                empirical_curve(rows, "log_variance", "ensemble mean"),
            ],
        ),
        fig(
            "var_log_variance",
            "Var[ln sigma_n^2]",
            "Var ln sigma_n^2",
            false,
            vec![
                theory_curve(
                    rows,
                    "var_log_variance",
                    "theory (trigamma sums)",
                    CurveKind::Theory,
                ),
                empirical_curve(rows, "var_log_variance", "ensemble variance"),
            ],
        ),
        fig(
            "sigma",
            "E[sigma_n]",
            "sigma_n",
            true,
            vec![
                theory_curve(rows, "sigma", "theory E[sigma_n]", CurveKind::Theory),
                empirical_curve(rows, "sigma", "ensemble mean"),
            ],
        ),
        fig(
            "w2_sq",
            "E[W2^2] and the paper's lower bound",
            "W2^2",
            true,
            vec![
                theory_curve(rows, "w2_sq", "theory E[W2^2]", CurveKind::Theory),
                theory_curve(
                    rows,
                    "w2_sq_lower_bound",
                    "lower bound sum E[sigma_i^2]/M_i",
                    CurveKind::Bound,
                ),
                empirical_curve(rows, "w2_sq", "ensemble mean"),
                empirical_curve(rows, "median_w2_sq", "ensemble median"),
            ],
        ),
    ]
}
