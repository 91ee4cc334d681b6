//! The categorical resampling (Wright–Fisher) experiments: exact theory
//! (`collapse_analysis::markov`) beside ensembles (`collapse_sim::markov`), with a z-score for
//! every pair.

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure};
use crate::table::ComparisonRow;
use collapse_analysis::markov::theory::{Initial, MarkovSpec, MarkovTheory, theory};
use collapse_analysis::markov::{TwoTypeChain, diffusion_absorption_time};
use collapse_sim::markov::{MarkovConfig, MarkovMethod, MarkovRun, simulate};

/// One experiment: a spec, an ensemble, and a name for its files.
#[derive(Debug, Clone)]
pub struct MarkovExperiment {
    pub name: String,
    pub spec: MarkovSpec,
    pub config: MarkovConfig,
}

impl MarkovExperiment {
    pub fn new(spec: MarkovSpec, method: MarkovMethod, chains: u64, seed: u64) -> MarkovExperiment {
        let name = format!(
            "markov-{}-k{}-m{}-{}",
            spec.initial.label().replace([':', ','], ""),
            spec.categories,
            spec.samples,
            method.name()
        );
        let mut config = MarkovConfig::new(chains, seed, method);
        config.progress = true;
        MarkovExperiment { name, spec, config }
    }
}

pub struct MarkovOutcome {
    pub experiment: MarkovExperiment,
    pub theory: MarkovTheory,
    pub run: MarkovRun,
    pub rows: Vec<ComparisonRow>,
    pub seconds: f64,
}

impl MarkovOutcome {
    pub fn worst_z(&self) -> f64 {
        self.rows
            .iter()
            .filter_map(|r| r.z)
            .map(f64::abs)
            .fold(0.0, f64::max)
    }
}

/// Theory at 17 digits and the ensemble.
pub fn run_experiment(experiment: &MarkovExperiment) -> Result<MarkovOutcome, ReportError> {
    run_with_theory(experiment, None)
}

/// Every experiment in order; experiments with the same spec share one theory computation.
pub fn run_experiments(list: &[MarkovExperiment]) -> Result<Vec<MarkovOutcome>, ReportError> {
    let mut outcomes: Vec<MarkovOutcome> = Vec::new();
    for e in list {
        eprintln!("collapse report: running {} ...", e.name);
        let known = outcomes
            .iter()
            .find(|o| o.experiment.spec == e.spec)
            .map(|o| o.theory.clone());
        outcomes.push(run_with_theory(e, known)?);
    }
    Ok(outcomes)
}

fn run_with_theory(
    experiment: &MarkovExperiment,
    known: Option<MarkovTheory>,
) -> Result<MarkovOutcome, ReportError> {
    let start = std::time::Instant::now();
    let th = match known {
        Some(t) => t,
        None => theory(&experiment.spec, 17)?,
    };
    let run = simulate(&experiment.spec, &experiment.config)?;
    let rows = compare(&experiment.name, &th, &run);
    Ok(MarkovOutcome {
        experiment: experiment.clone(),
        theory: th,
        run,
        rows,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The long-form comparison rows: per generation the expected survivors and heterozygosity
/// (and P(T <= n) where exact), per category its survival at N (quantity `survival_rank_i`,
/// generation N), and the mean absorption time when every chain was absorbed.
pub fn compare(experiment: &str, th: &MarkovTheory, run: &MarkovRun) -> Vec<ComparisonRow> {
    let chains = run.config.chains;
    let spec = &run.spec;
    let row = |quantity: String, n: u64, theory: f64, empirical: f64, stderr: f64| {
        let feasible = mc_feasible(&quantity, theory, chains, u64::from(spec.categories));
        let z =
            (feasible && stderr > 0.0 && stderr.is_finite()).then(|| (empirical - theory) / stderr);
        ComparisonRow {
            experiment: experiment.to_string(),
            quantity,
            generation: n,
            theory: Some(theory),
            empirical,
            stderr,
            z,
            mc_feasible: feasible,
            method: run.config.method.name().to_string(),
            estimator: "-".to_string(),
            schedule: spec.initial.label(),
            samples: u64::from(spec.samples),
            chains,
            seed: run.config.seed,
        }
    };
    // A binomial proportion's s.e. under the theory (0 when the theory is certain).
    let proportion_se = |p: f64| (p * (1.0 - p) / chains as f64).max(0.0).sqrt();
    let mut rows = Vec::new();
    for (t, e) in th.rows.iter().zip(&run.rows) {
        let n = u64::from(t.n);
        rows.push(row(
            "surviving".into(),
            n,
            t.expected_surviving.to_f64(),
            e.surviving.mean,
            e.surviving.stderr,
        ));
        rows.push(row(
            "heterozygosity".into(),
            n,
            t.expected_heterozygosity.to_f64(),
            e.heterozygosity.mean,
            e.heterozygosity.stderr,
        ));
        if let Some(p) = &t.prob_absorbed {
            let p = p.to_f64();
            rows.push(row(
                "absorbed".into(),
                n,
                p,
                e.absorbed_fraction,
                proportion_se(p),
            ));
        }
    }
    let last = u64::from(spec.generations);
    for (i, (t, &e)) in th
        .final_survival
        .iter()
        .zip(&run.final_survival)
        .enumerate()
    {
        let p = t.to_f64();
        rows.push(row(
            format!("survival_rank_{}", i + 1),
            last,
            p,
            e,
            proportion_se(p),
        ));
    }
    let all_absorbed = run.absorption_times.iter().all(Option::is_some);
    if let (Some(t), Some(e), true) = (
        &th.absorption.expected_time,
        run.mean_absorption_time,
        all_absorbed,
    ) {
        rows.push(row(
            "absorption_time".into(),
            last,
            t.to_f64(),
            e.mean,
            e.stderr,
        ));
    }
    rows
}

/// Chains expected to carry a value before its mean over chains (and its standard error) is
/// trusted: with fewer, the empirical s.e. is itself unreliable (late heterozygosity lives in the
/// few chains not yet absorbed) and z is not reported.
const MIN_CARRYING_CHAINS: f64 = 100.0;
/// Expected events before a proportion's normal approximation is used for z.
const MIN_PROPORTION_EVENTS: f64 = 10.0;

/// Whether a mean over `chains` chains can be compared by z. Heterozygosity H lies in
/// [0, 1 - 1/K] and S - 1 (surviving categories beyond one) in [0, K - 1], so at least
/// R E[Y] / sup Y chains are expected to have Y > 0 (P(Y > 0) >= E[Y] / sup Y); proportions p
/// need R min(p, 1 - p) expected events (or a certain p).
fn mc_feasible(quantity: &str, theory: f64, chains: u64, categories: u64) -> bool {
    let r = chains as f64;
    let k = categories as f64;
    match quantity {
        "heterozygosity" => theory == 0.0 || r * theory / (1.0 - 1.0 / k) >= MIN_CARRYING_CHAINS,
        "surviving" => theory <= 1.0 || r * (theory - 1.0) / (k - 1.0) >= MIN_CARRYING_CHAINS,
        "absorbed" => {
            theory <= 0.0 || theory >= 1.0 || r * theory.min(1.0 - theory) >= MIN_PROPORTION_EVENTS
        }
        q if q.starts_with("survival_rank_") => {
            theory <= 0.0 || theory >= 1.0 || r * theory.min(1.0 - theory) >= MIN_PROPORTION_EVENTS
        }
        _ => true,
    }
}

fn series<'a>(rows: &'a [ComparisonRow], quantity: &str) -> Vec<&'a ComparisonRow> {
    rows.iter().filter(|r| r.quantity == quantity).collect()
}

/// Theory line and empirical band of a per-generation quantity.
fn per_generation(rows: &[ComparisonRow], quantity: &str, what: &str) -> Vec<Curve> {
    let s = series(rows, quantity);
    let x: Vec<f64> = s.iter().map(|r| r.generation as f64).collect();
    vec![
        Curve {
            label: format!("theory {what}"),
            x: x.clone(),
            y: s.iter().map(|r| r.theory.unwrap_or(f64::NAN)).collect(),
            kind: CurveKind::Theory,
        },
        Curve {
            label: "ensemble mean".into(),
            x,
            y: s.iter().map(|r| r.empirical).collect(),
            kind: CurveKind::Empirical {
                stderr: s.iter().map(|r| r.stderr).collect(),
                feasible: s.iter().map(|_| true).collect(),
            },
        },
    ]
}

/// The figures of one experiment: (file stem, figure).
pub fn figures(outcome: &MarkovOutcome) -> Vec<(String, Figure)> {
    let rows = &outcome.rows;
    let e = &outcome.experiment;
    let title = |what: &str| {
        format!(
            "{what}: K={} {} M={} {}, {} chains",
            e.spec.categories,
            e.spec.initial.label(),
            e.spec.samples,
            e.config.method.name(),
            e.config.chains
        )
    };
    let fig = |stem: &str, what: &str, x: &str, y: &str, log_y: bool, curves: Vec<Curve>| {
        (
            format!("{}-{stem}", e.name),
            Figure {
                title: title(what),
                x_label: x.into(),
                y_label: y.into(),
                log_y,
                curves,
            },
        )
    };
    let mut out = vec![
        fig(
            "surviving",
            "surviving categories",
            "generation n",
            "categories with p_i > 0",
            false,
            per_generation(rows, "surviving", "E[surviving]"),
        ),
        fig(
            "heterozygosity",
            "heterozygosity 1 - sum p_i^2",
            "generation n",
            "heterozygosity",
            true,
            per_generation(rows, "heterozygosity", "(1-1/M)^n (1 - sum q^2)"),
        ),
    ];
    // Survival at N by initial rank: the tail goes first.
    let ranks: Vec<&ComparisonRow> = rows
        .iter()
        .filter(|r| r.quantity.starts_with("survival_rank_"))
        .collect();
    if ranks.len() > 1 {
        let x: Vec<f64> = (1..=ranks.len()).map(|i| i as f64).collect();
        out.push(fig(
            "survival_by_rank",
            &format!("survival at n = {} by initial rank", e.spec.generations),
            "initial rank i (p_i decreasing)",
            "P(category i survives)",
            false,
            vec![
                Curve {
                    label: "theory (two-type chain)".into(),
                    x: x.clone(),
                    y: ranks.iter().map(|r| r.theory.unwrap_or(f64::NAN)).collect(),
                    kind: CurveKind::Theory,
                },
                Curve {
                    label: "ensemble fraction".into(),
                    x,
                    y: ranks.iter().map(|r| r.empirical).collect(),
                    kind: CurveKind::Empirical {
                        stderr: ranks.iter().map(|r| r.stderr).collect(),
                        feasible: ranks.iter().map(|_| true).collect(),
                    },
                },
            ],
        ));
    }
    if rows.iter().any(|r| r.quantity == "absorbed") {
        out.push(fig(
            "absorbed",
            "absorption-time distribution P(T <= n)",
            "generation n",
            "P(T <= n)",
            false,
            per_generation(rows, "absorbed", "P(T <= n)"),
        ));
    }
    out
}

/// Exact E[T] (two categories, p = 1/2, the enclosed fundamental-matrix solve) against
/// Kimura's diffusion value 2M ln 2, for M = 2, 4, ..., `largest`.
pub fn absorption_vs_samples_figure(largest: u32) -> Result<Figure, ReportError> {
    let mut sizes = Vec::new();
    let mut m = 2u32;
    while m <= largest {
        sizes.push(m);
        m *= 2;
    }
    let mut exact = Vec::new();
    for &m in &sizes {
        let chain = TwoTypeChain::enclosed(m, 64)?;
        let times = chain.absorption_times();
        // From p = 1/2: the count M/2 at generation 0 (M even).
        exact.push(times.mean[(m / 2) as usize].to_f64());
    }
    let x: Vec<f64> = sizes.iter().map(|&m| f64::from(m)).collect();
    Ok(Figure {
        title: "E[T] from p = 1/2, two categories: exact chain vs diffusion".into(),
        x_label: "M".into(),
        y_label: "E[T] (generations)".into(),
        log_y: true,
        curves: vec![
            Curve {
                label: "exact (fundamental matrix)".into(),
                x: x.clone(),
                y: exact,
                kind: CurveKind::Theory,
            },
            Curve {
                label: "diffusion 2M ln 2".into(),
                x,
                y: sizes
                    .iter()
                    .map(|&m| diffusion_absorption_time(m, &[0.5, 0.5]))
                    .collect(),
                kind: CurveKind::Bound,
            },
        ],
    })
}

/// The experiments of a scale: a Zipf(1.1) start with both samplers (survivors, the tail
/// vanishing first, heterozygosity), and two categories from p = 1/2 run to absorption.
/// Sizes: (K, M, N, R) of the Zipf runs; two-category runs use M = 20, N = 400 (P(T > 400) is
/// about 1e-9, so every chain is absorbed).
pub fn experiments(
    (k, m, n, r): (u64, u64, u64, u64),
    seed: u64,
) -> Result<Vec<MarkovExperiment>, ReportError> {
    let zipf = MarkovSpec::new(m, k, Initial::Zipf(1.1), n)?;
    let two = MarkovSpec::new(20, 2, Initial::Uniform, 400)?;
    Ok(vec![
        MarkovExperiment::new(zipf.clone(), MarkovMethod::Binomial, r, seed),
        MarkovExperiment::new(zipf, MarkovMethod::Labels, r, seed),
        MarkovExperiment::new(two, MarkovMethod::Binomial, r, seed),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_event_means_are_not_compared_by_z() {
        // Late heterozygosity carried by about one chain in 20000: not compared.
        assert!(!mc_feasible("heterozygosity", 8e-5, 20_000, 2));
        assert!(mc_feasible("heterozygosity", 0.1, 20_000, 2));
        assert!(mc_feasible("heterozygosity", 0.0, 20_000, 2));
        assert!(!mc_feasible("surviving", 1.00005, 20_000, 2));
        assert!(mc_feasible("surviving", 1.5, 20_000, 2));
        assert!(!mc_feasible("absorbed", 1.9e-6, 20_000, 2));
        assert!(mc_feasible("absorbed", 0.03, 20_000, 2));
        assert!(mc_feasible("absorbed", 1.0, 20_000, 2));
        assert!(!mc_feasible("survival_rank_3", 1e-5, 20_000, 40));
        assert!(mc_feasible("absorption_time", 26.0, 20_000, 2));
    }

    #[test]
    fn small_experiment_agrees_and_has_every_quantity() {
        let spec = MarkovSpec::new(12, 4, Initial::Zipf(1.1), 10).unwrap();
        let e = MarkovExperiment::new(spec, MarkovMethod::Binomial, 4000, 3);
        let o = run_experiment(&e).unwrap();
        assert!(o.worst_z() < 5.0, "worst |z| {}", o.worst_z());
        // K = 4, M = 12: the full chain has C(15, 3) = 455 states, so P(T <= n) is compared too.
        for q in [
            "surviving",
            "heterozygosity",
            "survival_rank_1",
            "survival_rank_4",
            "absorbed",
        ] {
            assert!(o.rows.iter().any(|r| r.quantity == q), "{q}");
        }
        assert_eq!(figures(&o).len(), 4);
        let fig = absorption_vs_samples_figure(16).unwrap();
        // The diffusion overestimates the exact mean at every M.
        let (exact, diffusion) = (&fig.curves[0].y, &fig.curves[1].y);
        assert!(exact.iter().zip(diffusion).all(|(e, d)| e < d));
    }
}
