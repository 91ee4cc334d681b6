//! Ensembles of the 1-D Gaussian recursion (theory: `collapse_analysis::gaussian`, derivation:
//! `proofs/gaussian.md`). Each chain keeps its state in standardised form — the offset of its
//! mean from the truth and the log of its variance — so that sigma_n/|mu_n| ~ 1e-30 after
//! thousands of generations loses no accuracy (x = mu + sigma z would lose every digit).

use crate::SimError;
use crate::kernels::{self, ChiSquareConstants};
use crate::normal::StandardNormal;
use crate::progress::Progress;
use crate::rng::{ChainRng, stream};
use crate::shard;
use crate::shard::{Assemble, ChainRange, Layout, PieceSink, Words};
use crate::stats::{Accumulator, Moments, QuantileTracker, Summary};
use collapse_analysis::truth::Truth;
use collapse_analysis::{GaussianSpec, Strategy};
use rayon::prelude::*;
use std::time::Instant;

mod strategies;
use strategies::Plan;
pub use strategies::{MAX_POOL, MAX_TRACE};

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

/// Everything one generation step needs about its sample size.
#[derive(Clone, Copy)]
struct Step {
    m: u64,
    inv_sqrt_m: f64,
    ln_divisor: f64,
    chi_square: ChiSquareConstants,
}

/// Chains per parallel block (fixed: block boundaries never depend on the thread count).
const CHUNK: usize = 256;
const QUARTILES: [f64; 3] = [0.25, 0.5, 0.75];

/// Runs `config.chains` chains of `spec` for N generations under its data strategy
/// (`spec.strategy`; proofs/strategies.md §8). `accumulate-subsample` needs the `exact` method
/// (it subsamples the individual points) and is refused with `sufficient`.
pub fn simulate(spec: &GaussianSpec, config: &EnsembleConfig) -> Result<GaussianRun, SimError> {
    let start = Instant::now();
    let mut run = shard::run_whole(
        config.chains,
        Assembler::new(spec, config),
        |owned, sink| simulate_piece(spec, config, owned, sink),
    )?;
    run.seconds = start.elapsed().as_secs_f64();
    Ok(run)
}

/// Checks a spec and config as `simulate` would, without running anything.
pub fn check(spec: &GaussianSpec, config: &EnsembleConfig) -> Result<(), SimError> {
    strategies::check(spec, config)?;
    crate::ensemble_pool(config.chains, MAX_CHAINS, config.threads).map(drop)
}

/// How the ensemble reduces (`crate::shard`): blocks of `CHUNK` chains, each block's five
/// accumulators and collapsed count, and per chain ln sigma_n^2 and W2^2 (for the quartiles).
pub const LAYOUT: Layout = Layout {
    block: CHUNK as u64,
    block_words: 5 * Accumulator::WORDS + 1,
    chain_values: 2,
};

/// Runs the chains of `owned` (and the rest of the blocks they touch) into `sink`; returns per
/// owned chain mu_N - mu and ln sigma_N^2 as words. Merged pieces give the bits of `simulate`.
pub fn simulate_piece(
    spec: &GaussianSpec,
    config: &EnsembleConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    strategies::check(spec, config)?;
    let pool = crate::ensemble_pool(config.chains, MAX_CHAINS, config.threads)?;
    crate::check_piece(owned, config.chains)?;
    pool.install(|| match spec.strategy {
        Strategy::AccumulateSubsample => strategies::run_subsample(spec, config, owned, sink),
        _ => run(spec, config, owned, sink),
    })
}

/// Builds a `GaussianRun` from the partials of every chain (`crate::shard`).
pub struct Assembler {
    spec: GaussianSpec,
    config: EnsembleConfig,
    rows: Vec<GenerationStats>,
    quartiles: (QuantileTracker<3>, QuantileTracker<3>),
}

impl Assembler {
    pub fn new(spec: &GaussianSpec, config: &EnsembleConfig) -> Assembler {
        Assembler {
            spec: spec.clone(),
            config: config.clone(),
            rows: Vec::with_capacity(spec.generations as usize + 1),
            quartiles: (
                QuantileTracker::new(QUARTILES),
                QuantileTracker::new(QUARTILES),
            ),
        }
    }
}

impl Assemble for Assembler {
    type Run = GaussianRun;

    fn generation(&mut self, n: u64, blocks: &[u64], values: &[&[f64]]) {
        let mut words = Words::new(blocks);
        let mut stats = Vec::with_capacity(blocks.len() / LAYOUT.block_words);
        while words.remaining() > 0 {
            stats.push(BlockStats::from_words(&mut words));
        }
        let (q1, q2) = &mut self.quartiles;
        self.rows
            .push(generation_row(n, &stats, values[0], values[1], (q1, q2)));
    }

    fn finish(self, ends: &[&[u64]]) -> GaussianRun {
        let final_chains = ends
            .iter()
            .flat_map(|e| e.chunks_exact(2))
            .map(|w| ChainEnd {
                mean_offset: f64::from_bits(w[0]),
                log_variance: f64::from_bits(w[1]),
            })
            .collect();
        GaussianRun {
            spec: self.spec,
            config: self.config,
            rows: self.rows,
            final_chains,
            seconds: 0.0,
        }
    }
}

/// Hands generation n of a span to the sink: its blocks as words, and the owned chains' ln
/// sigma_n^2 and W2^2 (`offset` is where the owned chains begin in the span).
fn emit(
    sink: &mut dyn PieceSink,
    n: u64,
    blocks: &[BlockStats],
    (log_variances, w2s): (&[f64], &[f64]),
    (offset, len): (usize, usize),
) {
    let mut words = Vec::with_capacity(blocks.len() * LAYOUT.block_words);
    for b in blocks {
        b.push_words(&mut words);
    }
    let owned = offset..offset + len;
    sink.generation(n, &words, &[&log_variances[owned.clone()], &w2s[owned]]);
}

/// Per owned chain: mu_N - mu and ln sigma_N^2, as words.
fn end_words(mean_offsets: &[f64], log_variances: &[f64]) -> Vec<u64> {
    mean_offsets
        .iter()
        .zip(log_variances)
        .flat_map(|(m, l)| [m.to_bits(), l.to_bits()])
        .collect()
}

fn run(
    spec: &GaussianSpec,
    config: &EnsembleConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let span = LAYOUT.span(owned, config.chains);
    let offset = (owned.start - span.start) as usize;
    let owned_len = owned.len() as usize;
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
            chi_square: ChiSquareConstants::new((m - 1) as f64),
        })
        .collect();
    // A non-normal truth: generation 1 is fitted to M_0 draws of D0 (and, under a strategy,
    // the fresh or kept real points are draws of D0: `strategies`); W2 to D0 gains
    // 2 sigma (1 - rho) sigma_n (crate::truth). Generation 0 is D0 itself (W2 = 0).
    let truth = spec.truth;
    let real_truth = strategies::non_normal(spec);
    let shape = 2.0 * sigma * (1.0 - truth.comonotone_correlation().rho);
    // What each generation does (all `Replace` for the paper's strategy).
    let plans = strategies::plans(spec);
    let r = span.len() as usize;
    // Chain states, one array per field (vector kernels read four chains at once). Each chain
    // keeps mu_n - mu, ln sigma_n^2 and sigma_n = exp(ln sigma_n^2 / 2).
    let mut rngs: Vec<ChainRng> = (span.start..span.end)
        .into_par_iter()
        .map(|c| ChainRng::for_chain(config.seed, stream::GAUSSIAN, c))
        .collect();
    // `keep`: each chain's kept points (mean, SS), its first draws; empty otherwise.
    let mut kept = strategies::draw_kept(spec, config.method, &mut rngs);
    let mut kept_blocks: Vec<&mut [[f64; 2]]> = if kept.is_empty() {
        (0..r.div_ceil(CHUNK)).map(|_| Default::default()).collect()
    } else {
        kept.chunks_mut(CHUNK).collect()
    };
    let mut mean_offsets = vec![0.0; r];
    let mut log_variances = vec![log_sigma2; r];
    let mut sigmas = vec![sigma; r];
    // Per-chain W2^2, kept for the exact quartiles.
    let mut w2s = vec![0.0; r];
    let mut progress = Progress::new(spec.generations, config.progress);
    for n in 0..=spec.generations {
        if n > 0 && sink.stopped() {
            return Err(SimError::Interrupted);
        }
        let step = (n > 0).then(|| steps[(n - 1) as usize]);
        let plan = (n > 0).then(|| &plans[(n - 1) as usize]);
        let method = config.method;
        let w2_shape = if n == 0 { 0.0 } else { shape };
        let first_from_truth = n == 1 && truth != Truth::Normal;
        // One parallel pass per generation: advance a block, then accumulate its statistics.
        let blocks: Vec<BlockStats> = rngs
            .par_chunks_mut(CHUNK)
            .zip(mean_offsets.par_chunks_mut(CHUNK))
            .zip(log_variances.par_chunks_mut(CHUNK))
            .zip(sigmas.par_chunks_mut(CHUNK))
            .zip(w2s.par_chunks_mut(CHUNK))
            .zip(kept_blocks.par_iter_mut())
            .map(
                |(((((rng, mean_offset), log_variance), sigma_n), w2), kept)| {
                    if let Some(plan @ (Plan::Accumulate { .. } | Plan::Anchored { .. })) = plan {
                        strategies::advance(
                            plan,
                            method,
                            sigma,
                            rng,
                            mean_offset,
                            log_variance,
                            sigma_n,
                            kept,
                            (real_truth, n == 1),
                        );
                    } else if let Some(step) = &step {
                        let len = rng.len();
                        let (mut z, mut ss) = ([0.0; CHUNK], [0.0; CHUNK]);
                        let (z, ss) = (&mut z[..len], &mut ss[..len]);
                        let z_scale = match method {
                            // D0's sample is drawn point by point whatever the method: the
                            // fitted statistics of a non-normal sample have no simple law.
                            _ if first_from_truth => {
                                fit_truth_sample_many(rng, truth, step.m, z, ss);
                                1.0
                            }
                            Method::Exact => {
                                kernels::fit_normals_many(rng, step.m, z, ss);
                                1.0
                            }
                            Method::Sufficient => {
                                kernels::sufficient_draw_many(rng, &step.chi_square, z, ss);
                                step.inv_sqrt_m
                            }
                        };
                        kernels::update_chains(
                            mean_offset,
                            log_variance,
                            sigma_n,
                            z,
                            z_scale,
                            ss,
                            step.ln_divisor,
                        );
                    }
                    block_stats(
                        mean_offset,
                        log_variance,
                        sigma_n,
                        w2,
                        sigma,
                        collapse_threshold,
                        w2_shape,
                    )
                },
            )
            .collect();
        emit(
            sink,
            n,
            &blocks,
            (&log_variances, &w2s),
            (offset, owned_len),
        );
        progress.set(n);
    }
    progress.finish();
    let owned_range = offset..offset + owned_len;
    Ok(end_words(
        &mean_offsets[owned_range.clone()],
        &log_variances[owned_range],
    ))
}

/// Sample mean and sum of squares of `count` draws g(Z) of a standardised truth per chain
/// (Welford's update: no cancellation however the sample is spread).
fn fit_truth_sample_many(
    rngs: &mut [ChainRng],
    truth: Truth,
    count: u64,
    means: &mut [f64],
    ss: &mut [f64],
) {
    let normal = StandardNormal::new();
    for ((rng, mean), ss) in rngs.iter_mut().zip(means.iter_mut()).zip(ss.iter_mut()) {
        let (mut m, mut s) = (0.0, 0.0);
        for j in 1..=count {
            let x = truth.at_normal_score(normal.sample(rng));
            let delta = x - m;
            m += delta / j as f64;
            s += delta * (x - m);
        }
        *mean = m;
        *ss = s;
    }
}

/// The statistics of generation n from its blocks' statistics, merged in block order (the same
/// bits for any thread count), and the quartiles of all chains' ln sigma_n^2 and W2^2.
fn generation_row(
    n: u64,
    blocks: &[BlockStats],
    log_variances: &[f64],
    w2s: &[f64],
    (log_variance_quartiles, w2_quartiles): (&mut QuantileTracker<3>, &mut QuantileTracker<3>),
) -> GenerationStats {
    let total = blocks
        .iter()
        .fold(BlockStats::default(), |acc, b| acc.merge(b));
    let (log_q, w2_q) = rayon::join(
        || log_variance_quartiles.quantiles(log_variances),
        || w2_quartiles.quantiles(w2s),
    );
    let m = |i: usize| total.acc[i].moments();
    let s = |i: usize| {
        let x = m(i);
        Summary {
            mean: x.mean,
            stderr: x.stderr,
        }
    };
    GenerationStats {
        n,
        variance: s(0),
        sigma: s(1),
        log_variance: m(2),
        mean_sq_error: s(3),
        w2_sq: s(4),
        variance_quartiles: log_q.map(f64::exp),
        w2_sq_quartiles: w2_q,
        collapsed_fraction: total.collapsed as f64 / log_variances.len() as f64,
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
    fn push_words(&self, out: &mut Vec<u64>) {
        for a in &self.acc {
            a.push_words(out);
        }
        out.push(self.collapsed);
    }

    fn from_words(words: &mut Words<'_>) -> BlockStats {
        BlockStats {
            acc: std::array::from_fn(|_| Accumulator::from_words(words)),
            collapsed: words.u64(),
        }
    }

    fn merge(&self, other: &BlockStats) -> BlockStats {
        BlockStats {
            acc: std::array::from_fn(|i| self.acc[i].merge(&other.acc[i])),
            collapsed: self.collapsed + other.collapsed,
        }
    }
}

fn block_stats(
    mean_offset: &[f64],
    log_variance: &[f64],
    sigma_n: &[f64],
    w2s: &mut [f64],
    sigma: f64,
    collapse_threshold: f64,
    w2_shape: f64,
) -> BlockStats {
    /// The same code compiled for AVX2 (four lanes per instruction; the sums are the same
    /// IEEE operations in the same order, so the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn with_avx2(
        mean_offset: &[f64],
        log_variance: &[f64],
        sigma_n: &[f64],
        w2s: &mut [f64],
        sigma: f64,
        collapse_threshold: f64,
        w2_shape: f64,
    ) -> BlockStats {
        block_stats_body(
            mean_offset,
            log_variance,
            sigma_n,
            w2s,
            sigma,
            collapse_threshold,
            w2_shape,
        )
    }
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::avx2::available() {
        // SAFETY: the CPU has AVX2 (checked).
        return unsafe {
            with_avx2(
                mean_offset,
                log_variance,
                sigma_n,
                w2s,
                sigma,
                collapse_threshold,
                w2_shape,
            )
        };
    }
    block_stats_body(
        mean_offset,
        log_variance,
        sigma_n,
        w2s,
        sigma,
        collapse_threshold,
        w2_shape,
    )
}

#[inline(always)]
fn block_stats_body(
    mean_offset: &[f64],
    log_variance: &[f64],
    sigma_n: &[f64],
    w2s: &mut [f64],
    sigma: f64,
    collapse_threshold: f64,
    w2_shape: f64,
) -> BlockStats {
    let len = w2s.len();
    assert!(len <= CHUNK && mean_offset.len() == len && sigma_n.len() == len);
    let (mut variance, mut sq_error) = ([0.0; CHUNK], [0.0; CHUNK]);
    let mut collapsed = 0;
    for i in 0..len {
        let s = sigma_n[i];
        variance[i] = s * s;
        sq_error[i] = mean_offset[i] * mean_offset[i];
        // w2_shape = 2 sigma (1 - rho): zero for a normal truth (crate::truth, W2 to D0).
        w2s[i] = sq_error[i] + (s - sigma) * (s - sigma) + w2_shape * s;
        collapsed += u64::from(log_variance[i] < collapse_threshold);
    }
    BlockStats {
        acc: [
            Accumulator::from_slice(&variance[..len]),
            Accumulator::from_slice(sigma_n),
            Accumulator::from_slice(log_variance),
            Accumulator::from_slice(&sq_error[..len]),
            Accumulator::from_slice(w2s),
        ],
        collapsed,
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

    /// A non-normal truth D0 (proofs/truths.md): E[(mu_n - mu)^2] = sigma^2 S_n and
    /// E[sigma_n^2] = sigma^2 hold for every D0, and Var[sigma_1^2] = (mu_4 - sigma^4 (M-3)/(M-1))/M
    /// tells the truths apart (0.10 uniform, 0.17 mixture, 0.22 normal, 0.26 student:10,
    /// 0.52 laplace at M = 10), so the first fit really draws from D0. The means use |z| < 5
    /// (false-alarm rate 5.7e-7 each, 80 comparisons); the variance is an estimate from R =
    /// 40000 chains whose relative s.e. is below 3% for these laws, so 10% is over 3 s.e.
    #[test]
    fn non_normal_truths_match_the_theory() {
        use collapse_analysis::truth::Truth;
        let m = 10u64;
        let r = 40_000u64;
        for (truth, mu4) in [
            (Truth::Uniform, 1.8),
            (Truth::Mixture, 1.72),
            (Truth::Student(10.0), 4.0),
            (Truth::Laplace, 6.0),
        ] {
            let s = spec(m, 5).with_truth(truth).unwrap();
            for method in [Method::Exact, Method::Sufficient] {
                let run = simulate(&s, &EnsembleConfig::new(r, 5, method)).unwrap();
                for row in &run.rows[1..] {
                    let mse = row.n as f64 / m as f64;
                    let z_mse = (row.mean_sq_error.mean - mse) / row.mean_sq_error.stderr;
                    let z_var = (row.variance.mean - 1.0) / row.variance.stderr;
                    assert!(
                        z_mse.abs() < 5.0,
                        "{truth:?} {method:?} n={}: {z_mse}",
                        row.n
                    );
                    assert!(
                        z_var.abs() < 5.0,
                        "{truth:?} {method:?} n={}: {z_var}",
                        row.n
                    );
                }
                let m_f = m as f64;
                let expected = (mu4 - (m_f - 3.0) / (m_f - 1.0)) / m_f;
                let observed = run.rows[1].variance.stderr.powi(2) * r as f64;
                assert!(
                    (observed / expected - 1.0).abs() < 0.1,
                    "{truth:?} {method:?}: Var[sigma_1^2] {observed} vs {expected}"
                );
                // Generation 0 is D0 itself; every later W2^2 exceeds the mean error.
                assert_eq!(run.rows[0].w2_sq.mean, 0.0);
                assert!(
                    run.rows[1..]
                        .iter()
                        .all(|r| r.w2_sq.mean > r.mean_sq_error.mean)
                );
            }
        }
        // A non-normal truth combines with any strategy, in either order (proofs/strategies.md
        // §11; checked in `strategies/tests.rs`).
        let mix = collapse_analysis::Strategy::parse("mix:0.5").unwrap();
        let a = spec(m, 5).with_truth(Truth::Laplace).unwrap();
        let a = a.with_strategy(mix).unwrap();
        let b = spec(m, 5).with_strategy(mix).unwrap();
        assert_eq!(a, b.with_truth(Truth::Laplace).unwrap());
    }
}
