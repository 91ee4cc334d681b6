//! `collapse theory markov`: arguments and printing.

use anyhow::Result;
use clap::Args;
use collapse_analysis::Ball;
use collapse_analysis::markov::theory::{Initial, MarkovSpec, MarkovTheory};
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

pub fn print_theory(t: &MarkovTheory, digits: u32, json: bool) -> Result<()> {
    // No more digits than the radius certifies.
    let shown = |b: &Ball| b.to_decimal(digits.min(b.certified_digits().max(1)));
    let certified = t
        .rows
        .iter()
        .flat_map(|r| {
            [&r.expected_heterozygosity, &r.expected_surviving]
                .into_iter()
                .chain(r.prob_absorbed.as_ref())
        })
        .chain(t.absorption.expected_time.as_ref())
        .chain(t.absorption.var_time.as_ref())
        .map(Ball::certified_digits)
        .min()
        .unwrap_or(u32::MAX)
        .min(digits);
    if json {
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|r| {
                json!({
                    "n": r.n,
                    "expected_heterozygosity": shown(&r.expected_heterozygosity),
                    "expected_surviving": shown(&r.expected_surviving),
                    "prob_absorbed": r.prob_absorbed.as_ref().map(shown),
                })
            })
            .collect();
        let mut out = spec_json(&t.spec);
        out.insert("digits".into(), json!(digits));
        out.insert("certified_digits_min".into(), json!(certified));
        out.insert("exact_rationals".into(), json!(t.exact));
        out.insert(
            "absorption".into(),
            json!({
                "expected_time": t.absorption.expected_time.as_ref().map(shown),
                "expected_time_diffusion": format!("{:.6e}", t.absorption.expected_time_diffusion),
                "var_time": t.absorption.var_time.as_ref().map(shown),
            }),
        );
        out.insert("rows".into(), Value::Array(rows));
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let spec = &t.spec;
        println!(
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
        println!("n\tE[heterozygosity]\tE[surviving categories]\tP(absorbed by n)");
        for r in &t.rows {
            println!(
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
            (Some(mean), Some(var)) => println!(
                "absorption time: E[T] = {}, Var[T] = {}; diffusion approximation E[T] ~ {:.6}",
                shown(mean),
                shown(var),
                a.expected_time_diffusion
            ),
            _ => println!(
                "absorption time: exact value needs the full chain (more than two categories); diffusion approximation E[T] ~ {:.6}",
                a.expected_time_diffusion
            ),
        }
    }
    Ok(())
}
