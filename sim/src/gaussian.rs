//! Ensembles of the 1-D Gaussian recursion (theory: `collapse_analysis::gaussian`, derivation:
//! `proofs/gaussian.md`). Each chain keeps its state in standardised form — the offset of its
//! mean from the truth and the log of its variance — so that sigma_n/|mu_n| ~ 1e-30 after
//! thousands of generations loses no accuracy (x = mu + sigma z would lose every digit).

use crate::SimError;
use crate::gamma::ChiSquare;
use crate::normal::StandardNormal;
use crate::progress::Progress;
use crate::rng::{ChainRng, stream};
use crate::stats::{Moments, Summary, moments, quantiles};
use collapse_analysis::GaussianSpec;
use rayon::prelude::*;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Draw all M_i samples and fit them, as a user would.
    Exact,
    /// Draw the fitted statistics from their exact law: mean ~ N, variance ~ scaled chi-square.
    Sufficient,
}

impl Method {
    pub fn parse(text: &str) -> Result<Method, SimError> {
        match text {
            "exact" => Ok(Method::Exact),
            "sufficient" => Ok(Method::Sufficient),
            other => Err(SimError::Invalid {
                what: "method",
                why: format!("'{other}' (expected exact or sufficient)"),
            }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Sufficient => "sufficient",
        }
    }
}

/// Largest ensemble accepted.
pub const MAX_CHAINS: u64 = 100_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleConfig {
    pub chains: u64,
    pub seed: u64,
    pub method: Method,
    /// Worker threads (None: rayon's default). Results do not depend on it.
    pub threads: Option<usize>,
    /// Show a progress bar on a terminal for runs longer than a second.
    pub progress: bool,
}

impl EnsembleConfig {
    pub fn new(chains: u64, seed: u64, method: Method) -> EnsembleConfig {
        EnsembleConfig {
            chains,
            seed,
            method,
            threads: None,
            progress: false,
        }
    }
}

/// Statistics over chains at generation n.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationStats {
    pub n: u64,
    pub variance: Summary,
    pub sigma: Summary,
    /// Mean (with s.e.) and across-chain variance (with s.e.) of ln sigma_n^2.
    pub log_variance: Moments,
    pub mean_sq_error: Summary,
    pub w2_sq: Summary,
    /// Exact sample quartiles (25%, 50%, 75%) of sigma_n^2 and of W2^2.
    pub variance_quartiles: [f64; 3],
    pub w2_sq_quartiles: [f64; 3],
    /// Fraction of chains with sigma_n^2 < 1e-6 sigma^2.
    pub collapsed_fraction: f64,
}

/// The final state of one chain: mu_N - mu and ln sigma_N^2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainEnd {
    pub mean_offset: f64,
    pub log_variance: f64,
}

#[derive(Debug, Clone)]
pub struct GaussianRun {
    pub spec: GaussianSpec,
    pub config: EnsembleConfig,
    pub rows: Vec<GenerationStats>,
    pub final_chains: Vec<ChainEnd>,
    pub seconds: f64,
}

#[derive(Clone)]
struct Chain {
    rng: ChainRng,
    mean_offset: f64,
    log_variance: f64,
}

/// Per-chain values of the reported quantities.
#[derive(Clone, Copy, Default)]
struct Values {
    variance: f64,
    sigma: f64,
    log_variance: f64,
    mean_sq_error: f64,
    w2_sq: f64,
}

/// Everything one generation step needs about its sample size.
#[derive(Clone, Copy)]
struct Step {
    m: u64,
    inv_sqrt_m: f64,
    ln_divisor: f64,
    chi_square: ChiSquare,
}

const CHUNK: usize = 64;
const QUARTILES: [f64; 3] = [0.25, 0.5, 0.75];

/// Runs `config.chains` chains of `spec` for N generations.
pub fn simulate(spec: &GaussianSpec, config: &EnsembleConfig) -> Result<GaussianRun, SimError> {
    if config.chains == 0 || config.chains > MAX_CHAINS {
        return Err(SimError::Invalid {
            what: "chains",
            why: format!("must be in 1..={MAX_CHAINS}, got {}", config.chains),
        });
    }
    if let Some(t) = config.threads
        && (t == 0 || t > 1024)
    {
        return Err(SimError::Invalid {
            what: "threads",
            why: format!("must be in 1..=1024, got {t}"),
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.unwrap_or(0))
        .build()
        .map_err(|e| SimError::Invalid {
            what: "threads",
            why: e.to_string(),
        })?;
    Ok(pool.install(|| run(spec, config)))
}

fn run(spec: &GaussianSpec, config: &EnsembleConfig) -> GaussianRun {
    let start = Instant::now();
    let sigma = spec.sigma;
    let log_sigma2 = (sigma * sigma).ln();
    let collapse_threshold = log_sigma2 + (1e-6f64).ln();
    let steps: Vec<Step> = spec
        .sample_sizes()
        .into_iter()
        .map(|m| Step {
            m,
            inv_sqrt_m: 1.0 / (m as f64).sqrt(),
            ln_divisor: (spec.estimator.divisor(m) as f64).ln(),
            chi_square: ChiSquare::new((m - 1) as f64),
        })
        .collect();
    let r = config.chains as usize;
    let mut chains: Vec<Chain> = (0..config.chains)
        .into_par_iter()
        .map(|c| Chain {
            rng: ChainRng::for_chain(config.seed, stream::GAUSSIAN, c),
            mean_offset: 0.0,
            log_variance: log_sigma2,
        })
        .collect();
    let mut values = vec![Values::default(); r];
    let mut rows = Vec::with_capacity(steps.len() + 1);
    let mut progress = Progress::new(spec.generations, config.progress);
    let normal = StandardNormal::new();
    for n in 0..=spec.generations {
        if n > 0 {
            let step = steps[(n - 1) as usize];
            let method = config.method;
            chains.par_chunks_mut(CHUNK).for_each(|block| {
                if method == Method::Exact {
                    advance_exact_block(block, &step, &normal);
                } else {
                    for chain in block {
                        advance(chain, &step, method, &normal);
                    }
                }
            });
        }
        chains
            .par_chunks(CHUNK)
            .zip(values.par_chunks_mut(CHUNK))
            .for_each(|(cs, vs)| {
                for (c, v) in cs.iter().zip(vs.iter_mut()) {
                    let s = (0.5 * c.log_variance).exp();
                    let a = c.mean_offset * c.mean_offset;
                    *v = Values {
                        variance: s * s,
                        sigma: s,
                        log_variance: c.log_variance,
                        mean_sq_error: a,
                        w2_sq: a + (s - sigma) * (s - sigma),
                    };
                }
            });
        let collapsed = chains
            .iter()
            .filter(|c| c.log_variance < collapse_threshold)
            .count();
        rows.push(generation_stats(n, &values, collapsed as f64 / r as f64));
        progress.set(n);
    }
    progress.finish();
    GaussianRun {
        spec: spec.clone(),
        config: config.clone(),
        rows,
        final_chains: chains
            .iter()
            .map(|c| ChainEnd {
                mean_offset: c.mean_offset,
                log_variance: c.log_variance,
            })
            .collect(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The exact method on a block of chains, four at a time (same results as one at a time).
fn advance_exact_block(block: &mut [Chain], step: &Step, normal: &StandardNormal) {
    let mut groups = block.chunks_exact_mut(4);
    for group in &mut groups {
        let [a, b, c, d] = group else {
            unreachable!("chunks of four")
        };
        let fits =
            normal.mean_and_ss_lanes([&mut a.rng, &mut b.rng, &mut c.rng, &mut d.rng], step.m);
        for (chain, (zbar, ss)) in [a, b, c, d].into_iter().zip(fits) {
            apply_fit(chain, step, zbar, ss);
        }
    }
    for chain in groups.into_remainder() {
        advance(chain, step, Method::Exact, normal);
    }
}

#[inline]
fn apply_fit(chain: &mut Chain, step: &Step, zbar: f64, ss: f64) {
    chain.mean_offset += (0.5 * chain.log_variance).exp() * zbar;
    // ss = 0 (probability 0 in exact arithmetic) would give -inf; keep the smallest positive.
    chain.log_variance += ss.max(f64::MIN_POSITIVE).ln() - step.ln_divisor;
}

#[inline]
fn advance(chain: &mut Chain, step: &Step, method: Method, normal: &StandardNormal) {
    let (zbar, ss) = match method {
        Method::Exact => normal.mean_and_ss(&mut chain.rng, step.m),
        Method::Sufficient => {
            let zbar = normal.sample(&mut chain.rng) * step.inv_sqrt_m;
            (zbar, step.chi_square.sample(&mut chain.rng, normal))
        }
    };
    apply_fit(chain, step, zbar, ss);
}

/// Column-wise statistics, each computed sequentially in chain order (tasks run in parallel).
fn generation_stats(n: u64, values: &[Values], collapsed_fraction: f64) -> GenerationStats {
    let column = |f: fn(&Values) -> f64| values.iter().map(f).collect::<Vec<f64>>();
    let cols: Vec<Vec<f64>> = [
        (|v: &Values| v.variance) as fn(&Values) -> f64,
        |v| v.sigma,
        |v| v.log_variance,
        |v| v.mean_sq_error,
        |v| v.w2_sq,
    ]
    .into_par_iter()
    .map(column)
    .collect();
    let ((variance_quartiles, w2_sq_quartiles), stats) = rayon::join(
        || {
            rayon::join(
                || quantiles(&cols[0], QUARTILES, &mut Vec::new()),
                || quantiles(&cols[4], QUARTILES, &mut Vec::new()),
            )
        },
        || {
            cols.par_iter()
                .map(|c| moments(c))
                .collect::<Vec<Moments>>()
        },
    );
    let s = |i: usize| summary_of(&stats[i]);
    GenerationStats {
        n,
        variance: s(0),
        sigma: s(1),
        log_variance: stats[2],
        mean_sq_error: s(3),
        w2_sq: s(4),
        variance_quartiles,
        w2_sq_quartiles,
        collapsed_fraction,
    }
}

fn summary_of(m: &Moments) -> Summary {
    Summary {
        mean: m.mean,
        stderr: m.stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use collapse_analysis::{Estimator, Schedule};

    fn spec(m: u64, n: u64) -> GaussianSpec {
        GaussianSpec::new(Schedule::constant(m), Estimator::Unbiased, 1.0, n).unwrap()
    }

    #[test]
    fn identical_for_any_thread_count() {
        for method in [Method::Exact, Method::Sufficient] {
            let mut cfg = EnsembleConfig::new(301, 9, method);
            cfg.threads = Some(1);
            let a = simulate(&spec(5, 7), &cfg).unwrap();
            cfg.threads = Some(3);
            let b = simulate(&spec(5, 7), &cfg).unwrap();
            assert_eq!(a.rows, b.rows);
            assert_eq!(a.final_chains, b.final_chains);
        }
    }

    #[test]
    fn generation_zero_is_the_truth() {
        let run = simulate(&spec(4, 2), &EnsembleConfig::new(10, 1, Method::Exact)).unwrap();
        let g0 = &run.rows[0];
        assert_eq!(g0.variance.mean, 1.0);
        assert_eq!(g0.w2_sq.mean, 0.0);
        assert_eq!(g0.collapsed_fraction, 0.0);
        assert_eq!(run.rows.len(), 3);
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(simulate(&spec(4, 2), &EnsembleConfig::new(0, 1, Method::Exact)).is_err());
        let mut cfg = EnsembleConfig::new(3, 1, Method::Exact);
        cfg.threads = Some(0);
        assert!(simulate(&spec(4, 2), &cfg).is_err());
        assert!(Method::parse("literal").is_err());
    }

    #[test]
    fn two_samples_keep_full_accuracy() {
        // M = 2: SS = (z1 - z2)^2 / 2 is never negative or NaN.
        let run = simulate(&spec(2, 300), &EnsembleConfig::new(50, 3, Method::Exact)).unwrap();
        assert!(run.final_chains.iter().all(|c| c.log_variance.is_finite()));
        assert!(run.rows[300].collapsed_fraction > 0.9);
    }
}
