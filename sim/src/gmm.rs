//! Ensembles of the generational Gaussian-mixture experiment (spec and closed forms:
//! `collapse_analysis::gmm`; derivation: `proofs/gmm.md`). Generation 0 is the truth D_0;
//! generation i+1 is the K-component mixture fitted by EM (`em`) to M_i points: draws of model i
//! under `replace`, with round(F M_i) fresh draws of D_0 under `mix:F`, or with the first
//! round(F M_0) points of the original sample under `keep:F`; under `accumulate` to every point
//! drawn so far (the M_0 real ones and the M_j draws of every model j <= i), and under
//! `accumulate-subsample` to M_i of those drawn uniformly without replacement. The paper's "generation g" (its
//! first fit is generation 0) is generation g + 1 here.
//!
//! Per chain and generation: the squared L2 distance to D_0 (closed form), the mean
//! log-likelihood of a fixed held-out sample of D_0 (H points drawn once from their own stream,
//! shared by all chains), the mixture Wasserstein distance MW2^2 to D_0 (Delon & Desolneux
//! 2020: the cost of the best coupling of components under Gaussian W2^2, by an exact
//! transportation simplex; an upper bound on W2^2, exact when both sides have one component),
//! the smallest and largest covariance eigenvalues, the smallest weight,
//! whether a component has vanished (weight below 1/M_i: less than one point's responsibility),
//! and EM's iterations.
//!
//! Reproducibility: chain c draws its data, then its k-means++ start, from
//! `ChainRng::for_chain(seed, stream::GMM, c)`; chains run in fixed blocks of `CHUNK` whose
//! statistics merge in block order, so results are bit-identical for any thread count and any
//! split of the chains into pieces (`crate::shard`: `simulate_piece`, `Assembler`). Draw order
//! per generation: (mix) the fresh real points, then the synthetic points, each as one uniform
//! (the component) and d normals; (keep) the kept points are the first draws of the chain.

pub mod em;
pub mod transport;

use crate::SimError;
use crate::normal::StandardNormal;
use crate::progress::Progress;
use crate::rng::{ChainRng, stream, subsample_rows_to_front};
use crate::shard::{self, Assemble, ChainRange, Layout, PieceSink, Words};
use crate::stats::{Accumulator, Summary};
use collapse_analysis::Strategy;
use collapse_analysis::gmm::{GmmSpec, Mixture, l2_sq};
use em::{Em, EmConfig};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rayon::prelude::*;
use std::time::Instant;

/// A mixture as EM and the sampler use it: packed covariances (lower triangle by rows), their
/// Cholesky factors, log-determinants and log-weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub dim: usize,
    pub weights: Vec<f64>,
    /// K x d.
    pub means: Vec<f64>,
    /// K x d(d+1)/2, packed lower triangles by rows.
    pub covs: Vec<f64>,
    factors: Vec<f64>,
    log_dets: Vec<f64>,
    log_weights: Vec<f64>,
}

fn packed_len(d: usize) -> usize {
    d * (d + 1) / 2
}

fn packed_index(i: usize, j: usize) -> usize {
    i * (i + 1) / 2 + j
}

impl Model {
    /// A model of `mixture` (validated by `Mixture::new`).
    pub fn of(mixture: &Mixture) -> Model {
        let d = mixture.dim;
        let k = mixture.components();
        let mut covs = Vec::with_capacity(k * packed_len(d));
        for c in 0..k {
            let s = mixture.cov(c);
            for i in 0..d {
                for j in 0..=i {
                    covs.push(s[(i, j)]);
                }
            }
        }
        let mut model = Model {
            dim: d,
            weights: mixture.weights.clone(),
            means: mixture.means.clone(),
            covs,
            factors: Vec::new(),
            log_dets: Vec::new(),
            log_weights: Vec::new(),
        };
        model.refactor();
        model
    }

    /// K components in d dimensions, all N(0, I) with equal weights (EM overwrites them).
    pub fn blank(components: usize, dim: usize) -> Model {
        let identity = Mixture::standard_normal(dim);
        let mut model = Model::of(&identity);
        let one = model.clone();
        for _ in 1..components {
            model.weights.extend_from_slice(&one.weights);
            model.means.extend_from_slice(&one.means);
            model.covs.extend_from_slice(&one.covs);
        }
        model.refactor();
        model
    }

    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// Normalises the weights and factors the covariances (a pivot below the smallest normal
    /// double is clamped to it: the covariance floor keeps fitted covariances far above it).
    pub(crate) fn refactor(&mut self) {
        let (d, k) = (self.dim, self.components());
        let t = packed_len(d);
        let total: f64 = self.weights.iter().sum();
        self.weights.iter_mut().for_each(|w| *w /= total);
        self.log_weights.clear();
        self.log_weights
            .extend(self.weights.iter().map(|&w| crate::vmath::ln(w)));
        self.factors.clear();
        self.factors.extend_from_slice(&self.covs);
        self.log_dets.clear();
        for c in 0..k {
            let a = &mut self.factors[c * t..(c + 1) * t];
            let mut log_det = 0.0;
            for i in 0..d {
                for j in 0..=i {
                    let mut s = a[packed_index(i, j)];
                    for l in 0..j {
                        s -= a[packed_index(i, l)] * a[packed_index(j, l)];
                    }
                    a[packed_index(i, j)] = if i == j {
                        let p = s.max(f64::MIN_POSITIVE).sqrt();
                        log_det += 2.0 * crate::vmath::ln(p);
                        p
                    } else {
                        s / a[packed_index(j, j)]
                    };
                }
            }
            self.log_dets.push(log_det);
        }
    }

    /// ln w_c + ln N(x; mu_c, Sigma_c), whitening into `white` (length d).
    #[inline(always)]
    pub(crate) fn log_weighted_density(&self, c: usize, x: &[f64], white: &mut [f64]) -> f64 {
        let d = self.dim;
        let t = packed_len(d);
        let l = &self.factors[c * t..(c + 1) * t];
        let mu = &self.means[c * d..(c + 1) * d];
        let mut q = 0.0;
        for i in 0..d {
            let row = &l[packed_index(i, 0)..packed_index(i, 0) + i + 1];
            let mut s = x[i] - mu[i];
            for j in 0..i {
                s -= row[j] * white[j];
            }
            let z = s / row[i];
            white[i] = z;
            q += z * z;
        }
        self.log_weights[c] - 0.5 * (d as f64 * LN_2PI + self.log_dets[c] + q)
    }

    /// The mean of ln f(x) over the rows of `x` (compiled a second time with AVX2/FMA, as
    /// `em::Em`'s E-step: the same bits).
    pub fn mean_log_density(&self, x: &[f64], white: &mut [f64]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn with_fma(model: &Model, x: &[f64], white: &mut [f64]) -> f64 {
            model.mean_log_density_body(x, white)
        }
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::avx2::available() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            return unsafe { with_fma(self, x, white) };
        }
        self.mean_log_density_body(x, white)
    }

    #[inline(always)]
    fn mean_log_density_body(&self, x: &[f64], white: &mut [f64]) -> f64 {
        let d = self.dim;
        let total: f64 = x.chunks_exact(d).map(|p| self.log_density(p, white)).sum();
        total / (x.len() / d) as f64
    }

    /// ln of the density at x.
    #[inline(always)]
    pub fn log_density(&self, x: &[f64], white: &mut [f64]) -> f64 {
        let k = self.components();
        let mut top = f64::NEG_INFINITY;
        let mut terms = [0.0; 8];
        let mut many = Vec::new();
        let logs: &mut [f64] = if k <= 8 {
            &mut terms[..k]
        } else {
            many.resize(k, 0.0);
            &mut many
        };
        for (c, v) in logs.iter_mut().enumerate() {
            *v = self.log_weighted_density(c, x, white);
            top = top.max(*v);
        }
        let sum: f64 = logs.iter().map(|&v| crate::vmath::exp(v - top)).sum();
        top + crate::vmath::ln(sum)
    }

    /// Appends m draws (rows of d) to `out`: per draw one uniform (the component, by the
    /// cumulative weights) and d normals z, x = mu_c + L_c z.
    pub fn sample_into(
        &self,
        m: usize,
        rng: &mut ChainRng,
        normal: &StandardNormal,
        out: &mut Vec<f64>,
    ) {
        let (d, k) = (self.dim, self.components());
        let t = packed_len(d);
        let mut z = [0.0; 64];
        for _ in 0..m {
            let u = rng.next_f64();
            let mut c = k - 1;
            let mut acc = 0.0;
            for (j, &w) in self.weights.iter().enumerate() {
                acc += w;
                if u < acc {
                    c = j;
                    break;
                }
            }
            for v in z.iter_mut().take(d) {
                *v = normal.sample(rng);
            }
            let l = &self.factors[c * t..(c + 1) * t];
            let mu = &self.means[c * d..(c + 1) * d];
            for i in 0..d {
                let row = &l[packed_index(i, 0)..packed_index(i, 0) + i + 1];
                let lz: f64 = row.iter().zip(&z[..=i]).map(|(a, b)| a * b).sum();
                out.push(mu[i] + lz);
            }
        }
    }

    /// Component c's covariance as a dense matrix.
    pub fn cov(&self, c: usize) -> DMatrix<f64> {
        let d = self.dim;
        let s = &self.covs[c * packed_len(d)..(c + 1) * packed_len(d)];
        DMatrix::from_fn(d, d, |i, j| s[packed_index(i.max(j), i.min(j))])
    }

    /// The model as a `Mixture` (for the closed forms).
    pub fn mixture(&self) -> Mixture {
        let d = self.dim;
        let k = self.components();
        let mut covs = Vec::with_capacity(k * d * d);
        for c in 0..k {
            covs.extend(self.cov(c).transpose().iter().copied());
        }
        Mixture {
            dim: d,
            weights: self.weights.clone(),
            means: self.means.clone(),
            covs,
        }
    }
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Largest ensemble accepted.
pub const MAX_CHAINS: u64 = 1_000_000;
/// Largest held-out sample.
pub const MAX_HELDOUT: u64 = 1_000_000;
/// Largest number of pooled values (all chains) of accumulate and accumulate-subsample (8 bytes
/// each: 1 GiB).
pub const MAX_POOL_VALUES: u64 = 1 << 27;
/// Largest training set of one generation (points).
pub const MAX_SAMPLES: u64 = 10_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct GmmConfig {
    pub chains: u64,
    pub seed: u64,
    /// H: the held-out sample of D_0 every fit is scored on.
    pub heldout: u64,
    pub em: EmConfig,
    /// Worker threads (None: rayon's default). Results do not depend on it.
    pub threads: Option<usize>,
    pub progress: bool,
}

impl GmmConfig {
    pub fn new(chains: u64, seed: u64) -> GmmConfig {
        GmmConfig {
            chains,
            seed,
            heldout: 1000,
            em: EmConfig::default(),
            threads: None,
            progress: false,
        }
    }
}

/// Statistics over chains at generation n.
#[derive(Debug, Clone, PartialEq)]
pub struct GmmGenerationStats {
    pub n: u64,
    /// ||f_n - f_0||_2^2, closed form.
    pub l2_sq: Summary,
    /// Mean log-likelihood of the held-out sample of D_0 under model n.
    pub heldout_loglik: Summary,
    /// MW2^2(model n, D_0) (an upper bound on W2^2).
    pub distance: Summary,
    /// Smallest and largest eigenvalue over the covariances of the live components (weight at
    /// least 1/M; the heaviest always counts).
    pub min_eigenvalue: Summary,
    pub max_eigenvalue: Summary,
    pub min_weight: Summary,
    /// Fraction of chains with a component of weight below 1/M.
    pub vanished_fraction: f64,
    pub em_iterations: Summary,
    /// Fraction of chains whose EM hit the iteration cap.
    pub unconverged_fraction: f64,
}

#[derive(Debug, Clone)]
pub struct GmmRun {
    pub spec: GmmSpec,
    pub config: GmmConfig,
    pub rows: Vec<GmmGenerationStats>,
    /// Chain 0's model at every generation (0 = the truth): the paper's panels.
    pub chain0: Vec<Mixture>,
    pub seconds: f64,
}

/// Per-chain quantities of one generation, in this order.
const QUANTITIES: usize = 9;
const L2: usize = 0;
const LOGLIK: usize = 1;
const DISTANCE: usize = 2;
const MIN_EIG: usize = 3;
const MAX_EIG: usize = 4;
const MIN_WEIGHT: usize = 5;
const VANISHED: usize = 6;
const ITERATIONS: usize = 7;
const UNCONVERGED: usize = 8;

/// Chains per parallel block (fixed: block boundaries never depend on the thread count).
const CHUNK: usize = 16;

/// One chain's state.
struct Chain {
    rng: ChainRng,
    model: Model,
    /// keep:F: the kept points of the original sample.
    kept: Vec<f64>,
    /// accumulate and accumulate-subsample: every point drawn so far (rows of d).
    pool: Vec<f64>,
}

/// Scratch space of one worker.
struct Worker {
    em: Em,
    data: Vec<f64>,
    white: Vec<f64>,
    normal: StandardNormal,
}

/// The per-chain statistics of `model` against the truth.
fn statistics(
    model: &Model,
    truth: &Mixture,
    heldout: &[f64],
    m: Option<u64>,
    white: &mut [f64],
) -> [f64; QUANTITIES] {
    let mixture = model.mixture();
    let l2 = l2_sq(&mixture, truth);
    let loglik = model.mean_log_density(heldout, white);
    // Eigenvalues of the live components only: a vanished one (weight below 1/M) was fitted to
    // no point's worth of responsibility, so its covariance is meaningless.
    let live = |w: f64| m.is_none_or(|m| w * (m as f64) >= 1.0);
    let heaviest = (0..model.components())
        .max_by(|&a, &b| model.weights[a].total_cmp(&model.weights[b]))
        .unwrap_or(0);
    let (mut min_eig, mut max_eig) = (f64::INFINITY, 0.0f64);
    for c in 0..model.components() {
        if c != heaviest && !live(model.weights[c]) {
            continue;
        }
        let eig = SymmetricEigen::new(model.cov(c)).eigenvalues;
        min_eig = eig.iter().fold(min_eig, |a, &b| a.min(b));
        max_eig = eig.iter().fold(max_eig, |a, &b| a.max(b));
    }
    let min_weight = model.weights.iter().fold(1.0f64, |a, &b| a.min(b));
    let vanished = !live(min_weight);
    [
        l2,
        loglik,
        mixture_w2_sq(&mixture, truth),
        min_eig,
        max_eig,
        min_weight,
        f64::from(u8::from(vanished)),
        0.0,
        0.0,
    ]
}

/// MW2^2 between two mixtures (Delon & Desolneux 2020): the cheapest coupling of their
/// components under the Gaussian W2^2 (Gelbrich's formula, `crate::mvn::w2_sq`), by the exact
/// transportation simplex (`transport`). An upper bound on W2^2, equal to it between Gaussians.
/// NaN if a W2 or the simplex fails (not seen on valid mixtures).
pub fn mixture_w2_sq(a: &Mixture, b: &Mixture) -> f64 {
    let (k, l) = (a.components(), b.components());
    let mut cost = Vec::with_capacity(k * l);
    for i in 0..k {
        let (mean_i, cov_i) = (DVector::from_column_slice(a.mean(i)), a.cov(i));
        for j in 0..l {
            let w2 = crate::mvn::w2_sq(
                &mean_i,
                &cov_i,
                &DVector::from_column_slice(b.mean(j)),
                &b.cov(j),
            );
            cost.push(w2.unwrap_or(f64::NAN));
        }
    }
    if cost.iter().any(|c| c.is_nan()) {
        return f64::NAN;
    }
    transport::min_cost(&a.weights, &b.weights, &cost).unwrap_or(f64::NAN)
}

/// The held-out sample: H draws of D_0 from its own stream (chain index u64::MAX).
fn heldout_sample(spec: &GmmSpec, config: &GmmConfig) -> Vec<f64> {
    let mut rng = ChainRng::for_chain(config.seed, stream::GMM, u64::MAX);
    let mut out = Vec::with_capacity(config.heldout as usize * spec.dim);
    Model::of(&spec.truth).sample_into(
        config.heldout as usize,
        &mut rng,
        &StandardNormal::new(),
        &mut out,
    );
    out
}

fn check(spec: &GmmSpec, config: &GmmConfig) -> Result<(), SimError> {
    if config.heldout == 0 || config.heldout > MAX_HELDOUT {
        return Err(SimError::Invalid {
            what: "heldout",
            why: format!("must be in 1..={MAX_HELDOUT}, got {}", config.heldout),
        });
    }
    if let Some(&m) = spec.sample_sizes().iter().find(|&&m| m > MAX_SAMPLES) {
        return Err(SimError::Invalid {
            what: "samples",
            why: format!("at most {MAX_SAMPLES} points per generation, got {m}"),
        });
    }
    let em = &config.em;
    if !(em.tol.is_finite() && em.tol > 0.0) || em.max_iterations == 0 {
        return Err(SimError::Invalid {
            what: "em",
            why: "tolerance must be finite and > 0, iterations >= 1".into(),
        });
    }
    if !(em.covariance_floor.is_finite() && em.covariance_floor >= 0.0) {
        return Err(SimError::Invalid {
            what: "em",
            why: "the covariance floor must be finite and >= 0".into(),
        });
    }
    if matches!(
        spec.strategy,
        Strategy::Accumulate | Strategy::AccumulateSubsample
    ) {
        let points = spec
            .sample_sizes()
            .iter()
            .fold(0u64, |a, &m| a.saturating_add(m));
        let values = points
            .saturating_mul(spec.dim as u64)
            .saturating_mul(config.chains);
        if values > MAX_POOL_VALUES {
            return Err(SimError::Invalid {
                what: "chains",
                why: format!(
                    "{} keeps every point of every chain: chains x D x (M_0 + ... + M_(N-1)) = \
                     {values} values exceeds {MAX_POOL_VALUES}",
                    spec.strategy.label()
                ),
            });
        }
    }
    if spec.dim > 64 {
        return Err(SimError::Invalid {
            what: "dim",
            why: format!("at most 64, got {}", spec.dim),
        });
    }
    Ok(())
}

/// `spec` rebuilt through `GmmSpec::new` and `with_strategy`: a hand-built spec is checked as
/// one parsed from the command line.
fn validated(spec: &GmmSpec) -> Result<GmmSpec, SimError> {
    Ok(GmmSpec::new(
        spec.components as u64,
        spec.schedule.clone(),
        spec.generations,
        spec.truth.clone(),
    )?
    .with_strategy(spec.strategy)?)
}

/// Runs `config.chains` chains of `spec`. Errors (never panics) on bad settings.
pub fn simulate(spec: &GmmSpec, config: &GmmConfig) -> Result<GmmRun, SimError> {
    let start = Instant::now();
    let spec = validated(spec)?;
    let mut run = shard::run_whole(
        config.chains,
        Assembler::new(&spec, config),
        |owned, sink| simulate_piece(&spec, config, owned, sink),
    )?;
    run.seconds = start.elapsed().as_secs_f64();
    Ok(run)
}

/// How the ensemble reduces (`crate::shard`): blocks of `CHUNK` chains, each block's
/// accumulators of the nine per-chain quantities (the fractions are accumulator means, so no
/// counts); no per-chain values (a row has no quantiles).
pub const LAYOUT: Layout = Layout {
    block: CHUNK as u64,
    block_words: QUANTITIES * Accumulator::WORDS,
    chain_values: 0,
};

/// Runs the chains of `owned` (and the rest of the blocks they touch) into `sink`; returns the
/// piece's end words: chain 0's mixture at every generation if the piece owns chain 0, none
/// otherwise. Merged pieces give the bits of `simulate`.
pub fn simulate_piece(
    spec: &GmmSpec,
    config: &GmmConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let spec = validated(spec)?;
    check(&spec, config)?;
    let pool = crate::ensemble_pool(config.chains, MAX_CHAINS, config.threads)?;
    crate::check_piece(owned, config.chains)?;
    pool.install(|| run(&spec, config, owned, sink))
}

/// Builds a `GmmRun` from the partials of every chain (`crate::shard`).
pub struct Assembler {
    spec: GmmSpec,
    config: GmmConfig,
    rows: Vec<GmmGenerationStats>,
}

impl Assembler {
    pub fn new(spec: &GmmSpec, config: &GmmConfig) -> Assembler {
        Assembler {
            spec: spec.clone(),
            config: config.clone(),
            rows: Vec::with_capacity(spec.generations as usize + 1),
        }
    }
}

impl Assemble for Assembler {
    type Run = GmmRun;

    fn generation(&mut self, n: u64, blocks: &[u64], _values: &[&[f64]]) {
        let mut words = Words::new(blocks);
        let mut stats = Vec::with_capacity(blocks.len() / LAYOUT.block_words);
        while words.remaining() > 0 {
            stats.push(block_from_words(&mut words));
        }
        self.rows.push(generation_row(n, &stats));
    }

    fn finish(self, ends: &[&[u64]]) -> GmmRun {
        // Only the piece that owns chain 0 has end words.
        let mut chain0 = Vec::with_capacity(self.rows.len());
        for e in ends.iter().filter(|e| !e.is_empty()) {
            let mut words = Words::new(e);
            let count = words.u64();
            chain0.extend((0..count).map(|_| read_mixture(&mut words)));
        }
        GmmRun {
            spec: self.spec,
            config: self.config,
            rows: self.rows,
            chain0,
            seconds: 0.0,
        }
    }
}

/// One block's statistics: an accumulator per quantity.
type BlockStats = [Accumulator; QUANTITIES];

fn block_from_words(words: &mut Words<'_>) -> BlockStats {
    std::array::from_fn(|_| Accumulator::from_words(words))
}

/// Hands generation n of a span to the sink: its blocks as words (no per-chain values).
fn emit(sink: &mut dyn PieceSink, n: u64, blocks: &[BlockStats]) {
    let mut words = Vec::with_capacity(blocks.len() * LAYOUT.block_words);
    for b in blocks {
        for a in b {
            a.push_words(&mut words);
        }
    }
    sink.generation(n, &words, &[]);
}

/// A mixture as words: dim, K, then the weights, means and covariances (`Mixture`'s layout).
fn push_mixture(out: &mut Vec<u64>, m: &Mixture) {
    out.push(m.dim as u64);
    out.push(m.components() as u64);
    for part in [&m.weights, &m.means, &m.covs] {
        shard::push_f64s(out, part);
    }
}

fn read_mixture(words: &mut Words<'_>) -> Mixture {
    let dim = words.u64() as usize;
    let k = words.u64() as usize;
    let mut take = |len: usize| (0..len).map(|_| words.f64()).collect::<Vec<f64>>();
    let weights = take(k);
    let means = take(k * dim);
    let covs = take(k * dim * dim);
    Mixture {
        dim,
        weights,
        means,
        covs,
    }
}

/// Chain 0's mixtures as end words: their count, then each (`push_mixture`).
fn end_words(chain0: &[Mixture]) -> Vec<u64> {
    let mut out = Vec::new();
    out.push(chain0.len() as u64);
    for m in chain0 {
        push_mixture(&mut out, m);
    }
    out
}

/// The row of generation n from its blocks' statistics, merged in block order (the same bits
/// for any thread count or split into pieces).
fn generation_row(n: u64, blocks: &[BlockStats]) -> GmmGenerationStats {
    let total = blocks
        .iter()
        .fold([Accumulator::default(); QUANTITIES], |acc, b| {
            std::array::from_fn(|q| acc[q].merge(&b[q]))
        });
    let s = |q: usize| {
        let x = total[q].moments();
        Summary {
            mean: x.mean,
            stderr: x.stderr,
        }
    };
    GmmGenerationStats {
        n,
        l2_sq: s(L2),
        heldout_loglik: s(LOGLIK),
        distance: s(DISTANCE),
        min_eigenvalue: s(MIN_EIG),
        max_eigenvalue: s(MAX_EIG),
        min_weight: s(MIN_WEIGHT),
        vanished_fraction: s(VANISHED).mean,
        em_iterations: s(ITERATIONS),
        unconverged_fraction: s(UNCONVERGED).mean,
    }
}

fn run(
    spec: &GmmSpec,
    config: &GmmConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let span = LAYOUT.span(owned, config.chains);
    // The piece that owns chain 0 keeps its mixtures (span.start = 0 puts it first).
    let keeps_chain0 = owned.start == 0;
    let d = spec.dim;
    let sizes = spec.sample_sizes();
    let truth_model = Model::of(&spec.truth);
    // Shared by all chains, from its own stream: every piece draws the same sample.
    let heldout = heldout_sample(spec, config);
    let normal = StandardNormal::new();
    let kept_count = match spec.strategy {
        Strategy::Keep(_) => spec.strategy.kept(sizes[0]) as usize,
        _ => 0,
    };
    // Global chain indices: chain c's stream does not depend on the piece that runs it.
    let mut chains: Vec<Chain> = (span.start..span.end)
        .into_par_iter()
        .map(|c| {
            let mut rng = ChainRng::for_chain(config.seed, stream::GMM, c);
            let mut kept = Vec::with_capacity(kept_count * d);
            truth_model.sample_into(kept_count, &mut rng, &normal, &mut kept);
            Chain {
                rng,
                model: truth_model.clone(),
                kept,
                pool: Vec::new(),
            }
        })
        .collect();
    let new_worker = || Worker {
        em: Em::new(),
        data: Vec::new(),
        white: vec![0.0; d],
        normal: StandardNormal::new(),
    };
    let mut chain0 = Vec::with_capacity(if keeps_chain0 { sizes.len() + 1 } else { 0 });
    let mut progress = Progress::new(spec.generations, config.progress);
    for n in 0..=spec.generations {
        if n > 0 && sink.stopped() {
            return Err(SimError::Interrupted);
        }
        let m = (n > 0).then(|| sizes[(n - 1) as usize]);
        let blocks: Vec<BlockStats> = chains
            .par_chunks_mut(CHUNK)
            .map_init(new_worker, |w, block| {
                let mut values = [[0.0; CHUNK]; QUANTITIES];
                for (c, chain) in block.iter_mut().enumerate() {
                    let mut fit = None;
                    if let Some(m) = m {
                        let m = m as usize;
                        w.data.clear();
                        let accumulating = matches!(
                            spec.strategy,
                            Strategy::Accumulate | Strategy::AccumulateSubsample
                        );
                        if accumulating {
                            // The pool gains M_i draws of model i (of D_0 for i = 0); accumulate
                            // trains on all of it, accumulate-subsample on M_i rows drawn
                            // uniformly without replacement.
                            chain
                                .model
                                .sample_into(m, &mut chain.rng, &w.normal, &mut chain.pool);
                            let rows: &[f64] = if spec.strategy == Strategy::Accumulate {
                                &chain.pool
                            } else {
                                subsample_rows_to_front(&mut chain.pool, d, m, &mut chain.rng);
                                &chain.pool[..m * d]
                            };
                            let mut next = Model::blank(spec.components, d);
                            let report = w.em.fit(rows, &mut next, &config.em, &mut chain.rng);
                            chain.model = next;
                            fit = Some(report);
                        }
                        let (real, synth) = match spec.strategy {
                            Strategy::Mix(_) => {
                                let r = spec.strategy.fresh_real(m as u64) as usize;
                                (r, m - r)
                            }
                            Strategy::Keep(_) => {
                                w.data.extend_from_slice(&chain.kept);
                                (0, m - kept_count)
                            }
                            _ => (0, m),
                        };
                        if !accumulating {
                            truth_model.sample_into(real, &mut chain.rng, &w.normal, &mut w.data);
                            chain
                                .model
                                .sample_into(synth, &mut chain.rng, &w.normal, &mut w.data);
                            let mut next = Model::blank(spec.components, d);
                            let report = w.em.fit(&w.data, &mut next, &config.em, &mut chain.rng);
                            chain.model = next;
                            fit = Some(report);
                        }
                    }
                    let mut s = statistics(&chain.model, &spec.truth, &heldout, m, &mut w.white);
                    if let Some(report) = fit {
                        s[ITERATIONS] = report.iterations as f64;
                        s[UNCONVERGED] = f64::from(u8::from(!report.converged));
                    }
                    for (q, v) in values.iter_mut().zip(s) {
                        q[c] = v;
                    }
                }
                let len = block.len();
                std::array::from_fn(|q| Accumulator::from_slice(&values[q][..len]))
            })
            .collect();
        emit(sink, n, &blocks);
        if keeps_chain0 {
            chain0.push(chains[0].model.mixture());
        }
        progress.set(n);
    }
    progress.finish();
    Ok(if keeps_chain0 {
        end_words(&chain0)
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests;
