//! `collapse simulate gmm`: arguments and printing.

use anyhow::{Context, Result, bail};
use clap::Args;
use collapse_analysis::gmm::{GmmSpec, Mixture};
use collapse_analysis::{Schedule, Strategy};
use collapse_sim::gmm::GmmRun;
use serde_json::{Value, json};

#[derive(Args)]
pub struct GmmArgs {
    /// K: components of every fitted mixture.
    #[arg(long)]
    pub components: u64,
    /// Dimension d.
    #[arg(long)]
    pub dim: u64,
    /// Sample size M (of generation 0; every M_i must be at least K (d + 1)).
    #[arg(long)]
    pub samples: Option<u64>,
    /// constant | linear | power:P | geometric:R | list:a,b,...
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Number of generations N.
    #[arg(long)]
    pub generations: u64,
    /// paper (N(0, I_d), the paper's one blob) or a JSON file
    /// {"weights": [..], "means": [[..], ..], "covs": [[[..], ..], ..]}.
    #[arg(long, default_value = "paper")]
    pub truth: String,
    /// replace | accumulate | accumulate-subsample | mix:F | keep:F (proofs/strategies.md).
    #[arg(long, default_value = "replace")]
    pub strategy: String,
}

impl GmmArgs {
    pub fn spec(&self) -> Result<GmmSpec> {
        let schedule = Schedule::parse(self.samples, &self.schedule)?;
        if self.dim == 0 || self.dim > collapse_analysis::gmm::MAX_DIM {
            bail!(
                "invalid dim: must be in 1..={}, got {}",
                collapse_analysis::gmm::MAX_DIM,
                self.dim
            );
        }
        let truth = if self.truth == "paper" {
            Mixture::standard_normal(self.dim as usize)
        } else {
            read_truth(&self.truth)?
        };
        if truth.dim as u64 != self.dim {
            bail!(
                "invalid truth: {} is {}-dimensional but --dim is {}",
                self.truth,
                truth.dim,
                self.dim
            );
        }
        let strategy = Strategy::parse(&self.strategy)?;
        Ok(
            GmmSpec::new(self.components, schedule, self.generations, truth)?
                .with_strategy(strategy)?,
        )
    }
}

/// A mixture from a JSON file (validated by `Mixture::new`).
fn read_truth(path: &str) -> Result<Mixture> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("invalid truth: cannot read {path}"))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid truth: {path} is not JSON ({e})"))?;
    let numbers = |v: &Value, what: &str| -> Result<Vec<f64>> {
        v.as_array()
            .with_context(|| format!("invalid truth: {what} must be an array of numbers"))?
            .iter()
            .map(|x| {
                x.as_f64()
                    .with_context(|| format!("invalid truth: {what} has a non-number {x}"))
            })
            .collect()
    };
    let list = |key: &str| -> Result<&Vec<Value>> {
        value
            .get(key)
            .and_then(Value::as_array)
            .with_context(|| format!("invalid truth: {path} needs an array \"{key}\""))
    };
    let weights = numbers(
        value
            .get("weights")
            .with_context(|| format!("invalid truth: {path} needs an array \"weights\""))?,
        "weights",
    )?;
    let means = list("means")?
        .iter()
        .map(|m| numbers(m, "a mean"))
        .collect::<Result<Vec<_>>>()?;
    let covs = list("covs")?
        .iter()
        .map(|c| {
            c.as_array()
                .context("invalid truth: a covariance must be an array of rows")?
                .iter()
                .map(|row| numbers(row, "a covariance row"))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Mixture::new(weights, means, covs)?)
}

pub fn print_simulation(run: &GmmRun, json: bool) -> Result<()> {
    let spec = &run.spec;
    if json {
        let summary = |s: collapse_sim::stats::Summary| crate::markov::summary_json(&s);
        let rows: Vec<Value> = run
            .rows
            .iter()
            .map(|r| {
                json!({
                    "n": r.n,
                    "l2_sq": summary(r.l2_sq),
                    "heldout_loglik": summary(r.heldout_loglik),
                    "distance": summary(r.distance),
                    "min_eigenvalue": summary(r.min_eigenvalue),
                    "max_eigenvalue": summary(r.max_eigenvalue),
                    "min_weight": summary(r.min_weight),
                    "vanished_fraction": r.vanished_fraction,
                    "em_iterations": summary(r.em_iterations),
                    "unconverged_fraction": r.unconverged_fraction,
                })
            })
            .collect();
        let out = json!({
            "process": "gmm",
            "components": spec.components,
            "dim": spec.dim,
            "samples": spec.schedule.base,
            "schedule": spec.schedule.label(),
            "generations": spec.generations,
            "strategy": spec.strategy.label(),
            "truth_components": spec.truth.components(),
            "chains": run.config.chains,
            "seed": run.config.seed,
            "heldout": run.config.heldout,
            "distance_method": "MW2^2 (mixture Wasserstein: the best coupling of components under Gaussian W2^2; an upper bound on W2^2)",
            "rows": rows,
        });
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!(
            "n\tmean L2^2\t(s.e.)\theld-out loglik\t(s.e.)\tmean MW2^2\t(s.e.)\tmin eigenvalue\tmax eigenvalue\tvanished\tEM iterations"
        );
        for r in &run.rows {
            outln!(
                "{}\t{:.6e}\t{:.2e}\t{:.6}\t{:.2e}\t{:.6e}\t{:.2e}\t{:.4e}\t{:.4e}\t{:.4}\t{:.1}",
                r.n,
                r.l2_sq.mean,
                r.l2_sq.stderr,
                r.heldout_loglik.mean,
                r.heldout_loglik.stderr,
                r.distance.mean,
                r.distance.stderr,
                r.min_eigenvalue.mean,
                r.max_eigenvalue.mean,
                r.vanished_fraction,
                r.em_iterations.mean
            );
        }
    }
    Ok(())
}

crate::pieces::simulation!(
    GmmSimulation,
    gmm,
    GmmSpec,
    collapse_sim::gmm::GmmConfig,
    GmmRun,
    collapse_reports::simulation::write_gmm,
    print_simulation
);
