//! `collapse theory markov` and `collapse simulate markov`: arguments and printing.

use anyhow::Result;
use clap::Args;
use collapse_analysis::Ball;
use collapse_analysis::markov::theory::{Initial, MarkovSpec, MarkovTheory};
use collapse_sim::markov::MarkovRun;
use collapse_sim::stats::Summary;
use serde_json::{Value, json};

#[derive(Args)]
pub struct MarkovArgs {
    /// Sample size M (genes per generation).
    #[arg(long)]
    pub samples: u64,
    /// Number of categories K.
    #[arg(long)]
    pub categories: u64,
    /// uniform | zipf:S | geometric:R | probs:P1,P2,...
    #[arg(long, default_value = "uniform")]
    pub init: String,
    /// Number of generations N.
    #[arg(long)]
    pub generations: u64,
}

impl MarkovArgs {
    pub fn spec(&self) -> Result<MarkovSpec> {
        Ok(MarkovSpec::new(
            self.samples,
            self.categories,
            Initial::parse(&self.init)?,
            self.generations,
        )?)
    }
}

/// The spec's fields, shared by the JSON of `theory` and `simulate`.
pub fn spec_json(spec: &MarkovSpec) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("process".into(), json!("markov"));
    map.insert("samples".into(), json!(spec.samples));
    map.insert("categories".into(), json!(spec.categories));
    map.insert("init".into(), json!(spec.initial.label()));
    map.insert("generations".into(), json!(spec.generations));
    map
}

/// `{"lo", "hi"}`: the enclosure's decimal bounds (lo rounded down, hi up) at `digits` digits.
pub fn bounds(b: &Ball, digits: u32) -> Value {
    let (lo, hi) = b.to_decimal_bounds(digits);
    json!({"lo": lo, "hi": hi})
}

/// `b` with `digits` significant digits, but no more than its radius certifies.
/// An ensemble mean as JSON: {"mean", "stderr"} (every simulate printer's rows).
pub fn summary_json(s: &Summary) -> Value {
    json!({"mean": s.mean, "stderr": s.stderr})
}

pub fn shown(b: &Ball, digits: u32) -> String {
    b.to_decimal(digits.min(b.certified_digits().max(1)))
}

/// One theory row as JSON: `n`, every named ball as a decimal string ([`shown`]), and per name
/// its `certified_digits` and its `enclosures` ([`bounds`]).
pub fn ball_row<'a>(
    n: u64,
    named: impl IntoIterator<Item = (&'static str, &'a Ball)>,
    digits: u32,
) -> serde_json::Map<String, Value> {
    let mut obj = serde_json::Map::new();
    obj.insert("n".into(), json!(n));
    let mut accuracy = serde_json::Map::new();
    let mut enclosures = serde_json::Map::new();
    for (name, b) in named {
        obj.insert(name.into(), json!(shown(b, digits)));
        accuracy.insert(name.into(), json!(b.certified_digits().min(digits)));
        enclosures.insert(name.into(), bounds(b, digits));
    }
    obj.insert("certified_digits".into(), Value::Object(accuracy));
    obj.insert("enclosures".into(), Value::Object(enclosures));
    obj
}

/// The warning when fewer than `digits` digits could be certified.
pub fn warn_if_uncertified(certified: u32, digits: u32, precision_bits: u32) {
    if certified < digits {
        eprintln!(
            "collapse: warning: only {certified} of {digits} digits could be certified at {precision_bits} bits (the precision cap is {} bits); only certified digits are printed",
            collapse_analysis::gaussian::MAX_PRECISION_BITS
        );
    }
}

pub fn print_theory(t: &MarkovTheory, digits: u32, json: bool) -> Result<()> {
    // No more digits than the radius certifies.
    let shown = |b: &Ball| b.to_decimal(digits.min(b.certified_digits().max(1)));
    let certified = t.min_certified_digits().min(digits);
    if json {
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|r| {
                let mut enclosures = serde_json::Map::new();
                enclosures.insert(
                    "expected_heterozygosity".into(),
                    bounds(&r.expected_heterozygosity, digits),
                );
                enclosures.insert(
                    "expected_surviving".into(),
                    bounds(&r.expected_surviving, digits),
                );
                if let Some(b) = &r.prob_absorbed {
                    enclosures.insert("prob_absorbed".into(), bounds(b, digits));
                }
                json!({
                    "n": r.n,
                    "expected_heterozygosity": shown(&r.expected_heterozygosity),
                    "expected_surviving": shown(&r.expected_surviving),
                    "prob_absorbed": r.prob_absorbed.as_ref().map(shown),
                    "enclosures": enclosures,
                })
            })
            .collect();
        let mut out = spec_json(&t.spec);
        out.insert("digits".into(), json!(digits));
        out.insert("certified_digits_min".into(), json!(certified));
        out.insert("precision_bits".into(), json!(t.precision_bits));
        out.insert("exact_rationals".into(), json!(t.exact));
        out.insert(
            "absorption".into(),
            json!({
                "expected_time": t.absorption.expected_time.as_ref().map(shown),
                "expected_time_diffusion": shown(&t.absorption.expected_time_diffusion_enclosure),
                "var_time": t.absorption.var_time.as_ref().map(shown),
                "enclosures": {
                    "expected_time": t.absorption.expected_time.as_ref().map(|b| bounds(b, digits)),
                    "var_time": t.absorption.var_time.as_ref().map(|b| bounds(b, digits)),
                    "expected_time_diffusion": bounds(&t.absorption.expected_time_diffusion_enclosure, digits),
                },
            }),
        );
        out.insert("rows".into(), Value::Array(rows));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        let spec = &t.spec;
        outln!(
            "markov theory: M = {}, K = {}, init {}, N = {}; {}, every value certified to >= {} digits",
            spec.samples,
            spec.categories,
            spec.initial.label(),
            spec.generations,
            if t.exact {
                "exact rationals (printed rounded)"
            } else {
                "MPFR enclosures"
            },
            certified
        );
        outln!("n\tE[heterozygosity]\tE[surviving categories]\tP(absorbed by n)");
        for r in &t.rows {
            outln!(
                "{}\t{}\t{}\t{}",
                r.n,
                shown(&r.expected_heterozygosity),
                shown(&r.expected_surviving),
                r.prob_absorbed
                    .as_ref()
                    .map_or_else(|| "-".to_string(), shown)
            );
        }
        let a = &t.absorption;
        match (&a.expected_time, &a.var_time) {
            (Some(mean), Some(var)) => outln!(
                "absorption time: E[T] = {}, Var[T] = {}; diffusion approximation E[T] ~ {}",
                shown(mean),
                shown(var),
                shown(&a.expected_time_diffusion_enclosure)
            ),
            _ => outln!(
                "absorption time: no exact value (the full chain, lumped by symmetry, would exceed {} states); diffusion approximation E[T] ~ {}",
                collapse_analysis::markov::full::MAX_FULL_STATES,
                shown(&a.expected_time_diffusion_enclosure)
            ),
        }
    }
    warn_if_uncertified(certified, digits, t.precision_bits);
    Ok(())
}

pub fn print_simulation(run: &MarkovRun, json: bool) -> Result<()> {
    let ms = summary_json;
    let absorbed = run.absorption_times.iter().flatten().count();
    if json {
        let rows: Vec<Value> = run
            .rows
            .iter()
            .map(|r| {
                json!({
                    "n": r.n,
                    "surviving": ms(&r.surviving),
                    "heterozygosity": ms(&r.heterozygosity),
                    "entropy": ms(&r.entropy),
                    "largest_probability": ms(&r.largest),
                    "absorbed_fraction": r.absorbed_fraction,
                })
            })
            .collect();
        let mut out = spec_json(&run.spec);
        out.insert("chains".into(), json!(run.config.chains));
        out.insert("seed".into(), json!(run.config.seed));
        out.insert("method".into(), json!(run.config.method.name()));
        // histogram[n] = chains absorbed exactly at generation n.
        let mut histogram = vec![0u64; run.spec.generations as usize + 1];
        for t in run.absorption_times.iter().flatten() {
            histogram[*t as usize] += 1;
        }
        out.insert(
            "absorption_time".into(),
            json!({
                "mean": run.mean_absorption_time.map(|s| s.mean),
                "stderr": run.mean_absorption_time.map(|s| s.stderr),
                "absorbed_chains": absorbed,
                "histogram": histogram,
            }),
        );
        out.insert("rows".into(), Value::Array(rows));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!("n\tsurviving\t(s.e.)\theterozygosity\t(s.e.)\tentropy\t(s.e.)\tabsorbed");
        for r in &run.rows {
            outln!(
                "{}\t{:.6}\t{:.2e}\t{:.6}\t{:.2e}\t{:.6}\t{:.2e}\t{:.4}",
                r.n,
                r.surviving.mean,
                r.surviving.stderr,
                r.heterozygosity.mean,
                r.heterozygosity.stderr,
                r.entropy.mean,
                r.entropy.stderr,
                r.absorbed_fraction
            );
        }
        match run.mean_absorption_time {
            Some(t) => outln!(
                "absorption time over the {absorbed} of {} chains absorbed by generation {}: mean {:.4} (s.e. {:.2e})",
                run.config.chains,
                run.spec.generations,
                t.mean,
                t.stderr
            ),
            None => outln!(
                "no chain was absorbed by generation {}",
                run.spec.generations
            ),
        }
    }
    Ok(())
}

crate::pieces::simulation!(
    MarkovSimulation,
    markov,
    MarkovSpec,
    collapse_sim::markov::MarkovConfig,
    MarkovRun,
    collapse_reports::simulation::write_markov,
    print_simulation
);
