//! Ensembles of the 1-D Gaussian recursion (theory: `collapse_analysis::gaussian`, derivation:
//! `proofs/gaussian.md`). Each chain keeps its state in standardised form — the offset of its
//! mean from the truth and the log of its variance — so that sigma_n/|mu_n| ~ 1e-30 after
//! thousands of generations loses no accuracy (x = mu + sigma z would lose every digit).

use crate::SimError;
use crate::gamma::ChiSquare;
use crate::normal::StandardNormal;
use crate::progress::Progress;
use crate::rng::{ChainRng, stream};
use crate::stats::{Accumulator, Moments, Summary, quantiles};
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
    /// Exact sample quartiles (25%, 50%, 75%; linear interpolation between order statistics) of
    /// W2^2, and of sigma_n^2 as exp of those of ln sigma_n^2 (the same order statistics,
    /// interpolated geometrically).
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
    /// exp(log_variance / 2), cached: used by the next step and by the statistics.
    sigma: f64,
}

/// Everything one generation step needs about its sample size.
#[derive(Clone, Copy)]
struct Step {
    m: u64,
    inv_sqrt_m: f64,
    ln_divisor: f64,
    chi_square: ChiSquare,
}

/// Chains per parallel block (fixed: block boundaries never depend on the thread count).
const CHUNK: usize = 256;
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
            sigma,
        })
        .collect();
    // Per-chain ln sigma_n^2 and W2^2, kept for the exact quartiles.
    let mut log_variances = vec![0.0; r];
    let mut w2s = vec![0.0; r];
    let (mut scratch_a, mut scratch_b) = (Vec::with_capacity(r), Vec::with_capacity(r));
    let mut rows = Vec::with_capacity(steps.len() + 1);
    let mut progress = Progress::new(spec.generations, config.progress);
    let normal = StandardNormal::new();
    for n in 0..=spec.generations {
        let step = (n > 0).then(|| steps[(n - 1) as usize]);
        let method = config.method;
        // One parallel pass per generation: advance a block, then accumulate its statistics.
        let blocks: Vec<BlockStats> = chains
            .par_chunks_mut(CHUNK)
            .zip(log_variances.par_chunks_mut(CHUNK))
            .zip(w2s.par_chunks_mut(CHUNK))
            .map(|((block, lv), w)| {
                if let Some(step) = &step {
                    // One chain at a time: interleaving 2 or 4 chains measured no faster
                    // (benches `normal/fit_m100_lanes*`).
                    block
                        .iter_mut()
                        .for_each(|c| advance(c, step, method, &normal));
                }
                block_stats(block, lv, w, sigma, collapse_threshold)
            })
            .collect();
        // Merge in block order: the same bits for any thread count.
        let total = blocks
            .iter()
            .fold(BlockStats::default(), |acc, b| acc.merge(b));
        let (log_q, w2_q) = rayon::join(
            || quantiles(&log_variances, QUARTILES, &mut scratch_a),
            || quantiles(&w2s, QUARTILES, &mut scratch_b),
        );
        let m = |i: usize| total.acc[i].moments();
        let s = |i: usize| {
            let x = m(i);
            Summary {
                mean: x.mean,
                stderr: x.stderr,
            }
        };
        rows.push(GenerationStats {
            n,
            variance: s(0),
            sigma: s(1),
            log_variance: m(2),
            mean_sq_error: s(3),
            w2_sq: s(4),
            variance_quartiles: log_q.map(f64::exp),
            w2_sq_quartiles: w2_q,
            collapsed_fraction: total.collapsed as f64 / r as f64,
        });
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

/// Moments of the five per-chain quantities (sigma^2, sigma, ln sigma^2, (mu-mu0)^2, W2^2) over
/// a block, and its count of collapsed chains.
#[derive(Clone, Copy, Default)]
struct BlockStats {
    acc: [Accumulator; 5],
    collapsed: u64,
}

impl BlockStats {
    fn merge(&self, other: &BlockStats) -> BlockStats {
        BlockStats {
            acc: std::array::from_fn(|i| self.acc[i].merge(&other.acc[i])),
            collapsed: self.collapsed + other.collapsed,
        }
    }
}

fn block_stats(
    block: &[Chain],
    log_variances: &mut [f64],
    w2s: &mut [f64],
    sigma: f64,
    collapse_threshold: f64,
) -> BlockStats {
    let len = block.len();
    let mut columns = [[0.0f64; CHUNK]; 5];
    let mut collapsed = 0;
    for (i, c) in block.iter().enumerate() {
        let s = c.sigma;
        let a = c.mean_offset * c.mean_offset;
        let w2 = a + (s - sigma) * (s - sigma);
        for (column, v) in columns.iter_mut().zip([s * s, s, c.log_variance, a, w2]) {
            column[i] = v;
        }
        collapsed += u64::from(c.log_variance < collapse_threshold);
        log_variances[i] = c.log_variance;
        w2s[i] = w2;
    }
    BlockStats {
        acc: std::array::from_fn(|q| Accumulator::from_slice(&columns[q][..len])),
        collapsed,
    }
}

#[inline]
fn apply_fit(chain: &mut Chain, step: &Step, zbar: f64, ss: f64) {
    chain.mean_offset += chain.sigma * zbar;
    // ss = 0 (probability 0 in exact arithmetic) would give -inf; keep the smallest positive.
    chain.log_variance += ss.max(f64::MIN_POSITIVE).ln() - step.ln_divisor;
    chain.sigma = (0.5 * chain.log_variance).exp();
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
