//! `collapse theory mvn` and `collapse simulate mvn`: arguments and printing.

use crate::markov::warn_if_uncertified;
use anyhow::{Result, bail};
use clap::Args;
use collapse_analysis::mvn::{MvnSpec, MvnStrategyTheory, MvnTheory};
use collapse_analysis::{Ball, Schedule};
use serde_json::{Value, json};

#[derive(Args)]
pub struct MvnArgs {
    /// Dimension d.
    #[arg(long)]
    pub dim: u64,
    /// Sample size M (of generation 0; every M_i must exceed d).
    #[arg(long)]
    pub samples: Option<u64>,
    /// constant | linear | power:P | geometric:R | list:a,b,...
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Number of generations N.
    #[arg(long)]
    pub generations: u64,
    /// The diagonal of Sigma as v1,v2,...,vd (default: the identity).
    #[arg(long)]
    pub cov: Option<String>,
    /// replace | accumulate | accumulate-subsample | mix:F | keep:F (proofs/strategies.md).
    #[arg(long, default_value = "replace")]
    pub strategy: String,
}

impl MvnArgs {
    pub fn spec(&self) -> Result<MvnSpec> {
        let schedule = Schedule::parse(self.samples, &self.schedule)?;
        let cov = match &self.cov {
            None => None,
            Some(text) => Some(parse_cov(text)?),
        };
        let strategy = collapse_analysis::Strategy::parse(&self.strategy)?;
        Ok(MvnSpec::new(self.dim, schedule, cov, self.generations)?.with_strategy(strategy)?)
    }
}

fn parse_cov(text: &str) -> Result<Vec<f64>> {
    text.split(',')
        .map(|s| {
            let s = s.trim();
            match s.parse::<f64>() {
                Ok(v) => Ok(v),
                Err(_) => bail!("invalid cov: '{s}' is not a number in '{text}'"),
            }
        })
        .collect()
}

/// The spec's fields, shared by the JSON of `theory` and `simulate`.
pub fn spec_json(spec: &MvnSpec) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("process".into(), json!("mvn"));
    map.insert("dim".into(), json!(spec.dim));
    map.insert("samples".into(), json!(spec.schedule.base));
    map.insert("schedule".into(), json!(spec.schedule.label()));
    map.insert("cov".into(), json!(spec.cov_label()));
    map.insert("generations".into(), json!(spec.generations));
    map.insert("strategy".into(), json!(spec.strategy.label()));
    map
}

pub fn print_theory(t: &MvnTheory, digits: u32, json: bool) -> Result<()> {
    // No more digits than the radius certifies.
    let shown = |b: &Ball| b.to_decimal(digits.min(b.certified_digits().max(1)));
    let certified = t.min_certified_digits().min(digits);
    let spec = &t.spec;
    if json {
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|r| {
                let obj = crate::markov::ball_row(r.n, r.named(), digits);
                Value::Object(obj)
            })
            .collect();
        let mut out = spec_json(spec);
        out.insert("digits".into(), json!(digits));
        out.insert("certified_digits_min".into(), json!(certified));
        out.insert("precision_bits".into(), json!(t.precision_bits));
        out.insert(
            "det_collapses_almost_surely".into(),
            json!(t.det_collapses_almost_surely),
        );
        out.insert(
            "log_det_drift".into(),
            json!(t.log_det_drift.as_ref().map(shown)),
        );
        out.insert(
            "lyapunov_exponents".into(),
            json!(
                t.lyapunov_exponents
                    .as_ref()
                    .map(|v| v.iter().map(shown).collect::<Vec<_>>())
            ),
        );
        out.insert("bounded".into(), json!(t.mean_sq_error_limit.is_some()));
        out.insert(
            "limit_mean_sq_error".into(),
            json!(t.mean_sq_error_limit.as_ref().map(shown)),
        );
        out.insert("rows".into(), json!(rows));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!(
            "mvn theory: d = {}, schedule {}, M = {}, Sigma = {}, N = {}; {} bits, every value certified to >= {} digits",
            spec.dim,
            spec.schedule.label(),
            spec.schedule.base,
            spec.cov_label(),
            spec.generations,
            t.precision_bits,
            certified
        );
        outln!(
            "n\tE||mu-mu0||^2\tE[tr Sigma]\tE[ln det Sigma]\tVar[ln det Sigma]\tW2^2 lower bound\tE[tr Sigma^2]\tE[(tr Sigma)^2]\tE||Sigma-Sigma0||_F^2"
        );
        for r in &t.rows {
            let vals: Vec<String> = r.named().iter().map(|(_, b)| shown(b)).collect();
            outln!("{}\t{}", r.n, vals.join("\t"));
        }
        if let Some(drift) = &t.log_det_drift {
            outln!("drift of ln det Sigma per generation: {}", shown(drift));
        }
        if let Some(lyapunov) = &t.lyapunov_exponents {
            let shown: Vec<String> = lyapunov.iter().map(shown).collect();
            outln!(
                "Lyapunov exponents of Sigma_n (largest first): {}",
                shown.join(", ")
            );
        }
        if let Some(limit) = &t.mean_sq_error_limit {
            outln!(
                "limit of E||mu_n - mu||^2 (the W2^2 lower bound) as n -> infinity: {}",
                shown(limit)
            );
        }
        outln!(
            "{}",
            if t.det_collapses_almost_surely {
                "det Sigma_n -> 0 almost surely (sum of 1/M_i diverges); E||mu_n - mu||^2 grows without bound"
            } else {
                "det Sigma_n converges to a positive limit almost surely (sum of 1/M_i converges); E||mu_n - mu||^2 stays bounded"
            }
        );
    }
    warn_if_uncertified(certified, digits, t.precision_bits);
    Ok(())
}

/// `theory mvn --strategy S` for S other than replace: E||mu_n - mu||^2, E[tr Sigma_n] and the
/// lower bound of E[W2^2] from the projection lemma (proofs/strategies.md §10).
pub fn print_strategy_theory(t: &MvnStrategyTheory, digits: u32, json: bool) -> Result<()> {
    let shown = |b: &Ball| b.to_decimal(digits.min(b.certified_digits().max(1)));
    let certified = t.min_certified_digits().min(digits);
    let spec = &t.spec;
    if json {
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|r| {
                let mut obj = crate::markov::ball_row(r.n, r.named(), digits);
                // No closed form is known for these under this strategy.
                for name in ["expected_log_det", "var_log_det"] {
                    obj.insert(name.into(), Value::Null);
                }
                Value::Object(obj)
            })
            .collect();
        let mut out = spec_json(spec);
        out.insert("digits".into(), json!(digits));
        out.insert("certified_digits_min".into(), json!(certified));
        out.insert("precision_bits".into(), json!(t.scalar.precision_bits));
        out.insert("bounded".into(), json!(t.scalar.bounded));
        out.insert(
            "stationary".into(),
            json!(t.stationary.as_ref().map(|(e, v)| json!({
                "mean_sq_error": shown(e),
                "expected_trace": shown(v),
            }))),
        );
        out.insert("rows".into(), json!(rows));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!(
            "mvn theory, strategy {}: d = {}, schedule {}, M = {}, Sigma = {}, N = {}; every value certified to >= {} digits (no closed form is known for ln det Sigma_n under this strategy)",
            spec.strategy.label(),
            spec.dim,
            spec.schedule.label(),
            spec.schedule.base,
            spec.cov_label(),
            spec.generations,
            certified
        );
        outln!("n\tE||mu-mu0||^2\tE[tr Sigma]\tW2^2 lower bound");
        for r in &t.rows {
            let vals: Vec<String> = r.named().iter().map(|(_, b)| shown(b)).collect();
            outln!("{}\t{}", r.n, vals.join("\t"));
        }
        if let Some((e, v)) = &t.stationary {
            outln!(
                "stationary values (n -> infinity): E||mu-mu0||^2 = {}, E[tr Sigma] = {}",
                shown(e),
                shown(v)
            );
        }
        outln!(
            "E[W2^2] as n -> infinity: {}",
            match t.scalar.bounded {
                Some(true) => "bounded",
                Some(false) => "unbounded",
                None => "not determined for this schedule",
            }
        );
    }
    warn_if_uncertified(certified, digits, t.scalar.precision_bits);
    Ok(())
}

pub fn print_simulation(run: &collapse_sim::mvn::MvnRun, json: bool) -> Result<()> {
    if json {
        let rows: Vec<Value> = run
            .rows
            .iter()
            .map(|r| {
                let mut obj = serde_json::Map::new();
                obj.insert("n".into(), json!(r.n));
                for (name, s) in r.named() {
                    obj.insert(name.into(), crate::markov::summary_json(&s));
                }
                obj.insert("w2_sq_quartiles".into(), json!(r.w2_sq_quartiles));
                Value::Object(obj)
            })
            .collect();
        let mut out = spec_json(&run.spec);
        out.insert("chains".into(), json!(run.config.chains));
        out.insert("seed".into(), json!(run.config.seed));
        out.insert("method".into(), json!(run.config.method.name()));
        out.insert("rows".into(), json!(rows));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!(
            "n\tmean ||mu-mu0||^2\t(s.e.)\tmean tr Sigma\t(s.e.)\tmean ln det Sigma\t(s.e.)\tvar ln det Sigma\tmean W2^2\t(s.e.)\tmedian W2^2\tmean ln cond"
        );
        for r in &run.rows {
            outln!(
                "{}\t{:.6e}\t{:.2e}\t{:.6e}\t{:.2e}\t{:.6}\t{:.2e}\t{:.6}\t{:.6e}\t{:.2e}\t{:.6e}\t{:.4}",
                r.n,
                r.mean_sq_error.mean,
                r.mean_sq_error.stderr,
                r.trace.mean,
                r.trace.stderr,
                r.log_det.mean,
                r.log_det.stderr,
                r.log_det.variance,
                r.w2_sq.mean,
                r.w2_sq.stderr,
                r.w2_sq_quartiles[1],
                r.log_condition.mean
            );
        }
    }
    Ok(())
}

crate::pieces::simulation!(
    MvnSimulation,
    mvn,
    collapse_analysis::MvnSpec,
    collapse_sim::mvn::MvnConfig,
    collapse_sim::mvn::MvnRun,
    collapse_reports::simulation::write_mvn,
    print_simulation
);
