//! `collapse theory gaussian --strategy S` for a strategy other than replace: the rows of
//! `collapse_analysis::strategy::strategy_theory` (proofs/strategies.md).

use crate::markov::{bounds, warn_if_uncertified};
use anyhow::Result;
use collapse_analysis::Ball;
use collapse_analysis::strategy::StrategyTheory;
use serde_json::{Value, json};

pub fn print_theory(t: &StrategyTheory, digits: u32, json: bool) -> Result<()> {
    let spec = &t.spec;
    let certified = t.min_certified_digits();
    // No more digits than the radius certifies.
    let shown = |b: &Ball| b.to_decimal(digits.min(b.certified_digits().max(1)));
    if json {
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|r| {
                let obj = crate::markov::ball_row(r.n, r.named(), digits);
                Value::Object(obj)
            })
            .collect();
        let stationary = t.stationary.as_ref().map(|s| {
            json!({
                "mean_sq_error": shown(&s.mean_sq_error),
                "expected_variance": shown(&s.expected_variance),
                "enclosures": {
                    "mean_sq_error": bounds(&s.mean_sq_error, digits),
                    "expected_variance": bounds(&s.expected_variance, digits),
                },
            })
        });
        let mut out = crate::spec_json(spec);
        out.extend(crate::json_object(json!({
            "digits": digits,
            "certified_digits_min": certified.min(digits),
            "precision_bits": t.precision_bits,
            "exact_rationals": t.exact,
            "bounded": t.bounded,
            "stationary": stationary,
            "rows": rows,
        })));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!(
            "gaussian theory, strategy {}, truth {}: {} estimator, schedule {}, M = {}, sigma = {}, N = {}; {}, every value certified to >= {} digits",
            spec.strategy.label(),
            spec.truth.label(),
            spec.estimator.name(),
            spec.schedule.label(),
            spec.schedule.base,
            spec.sigma,
            spec.generations,
            if t.exact {
                "exact rationals".to_string()
            } else {
                format!("{} bits", t.precision_bits)
            },
            certified.min(digits)
        );
        outln!("n\tE[(mu-mu0)^2]\tE[sigma^2]\tW2^2 lower bound");
        for r in &t.rows {
            let vals: Vec<String> = r.named().iter().map(|(_, b)| shown(b)).collect();
            outln!("{}\t{}", r.n, vals.join("\t"));
        }
        if let Some(s) = &t.stationary {
            outln!(
                "stationary values (n -> infinity): E[(mu-mu0)^2] = {}, E[sigma^2] = {}",
                shown(&s.mean_sq_error),
                shown(&s.expected_variance)
            );
        }
        outln!(
            "E[W2^2] as n -> infinity: {}",
            match t.bounded {
                Some(true) => "bounded",
                Some(false) => "unbounded",
                None => "not determined for this schedule",
            }
        );
    }
    warn_if_uncertified(certified, digits, t.precision_bits);
    Ok(())
}
