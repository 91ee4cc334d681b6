//! The data strategies of the Gaussian ensemble (theory: `collapse_analysis::strategy`,
//! derivation: `proofs/strategies.md` §8).
//!
//! `accumulate`, `mix:F` and `keep:F` run generation-major like `replace`: each training set is
//! a union of batches, and a batch of m normals enters only through its mean and its sum of
//! squared deviations SS, merged exactly by Chan's formula
//!
//!   mean = (a xbar_a + b xbar_b) / (a + b),  SS = SS_a + SS_b + (a b / (a + b)) (xbar_a - xbar_b)^2,
//!
//! so the `exact` method draws each batch's m points and fits them (`kernels::fit_normals`), and
//! the `sufficient` method draws the batch's standardised mean (N(0, 1/m)) and SS
//! (chi-square(m - 1)) from their exact, independent laws. The per-chain state is the model
//! (mu_i, ln sigma_i^2) and, for `keep`, the kept points' mean and SS; `accumulate`'s pool is the
//! model itself (its mean is mu_i and its SS is D(N_{i-1}) sigma_i^2).
//!
//! `accumulate-subsample` needs the points (later subsamples reuse them): it runs chain-major,
//! one chain at a time through all generations with its pool in one buffer per block, and
//! keeps each chain's (mu_n, ln sigma_n^2) for the statistics, which are then reduced
//! generation by generation in block order as in `run`.
//!
//! A non-normal truth D0 (proofs/strategies.md §11): the real points — D_0 (every batch of
//! generation 1, whose model 0 is D0), `mix`'s fresh real batches, `keep`'s kept points and the
//! first M_0 points of `accumulate-subsample`'s pool — are drawn point by point as g(Z) through
//! `Truth::at_normal_score`, under both methods: the (mean, SS) of a batch of non-normal points
//! has no law to draw from. Synthetic batches (draws of a Gaussian model) keep the method's route.
//! The normal truth keeps its own draws, so its output is unchanged.

use super::{BlockStats, CHUNK, block_stats};
use super::{EnsembleConfig, Method};
use crate::kernels::{self, ChiSquareConstants};
use crate::normal::StandardNormal;
use crate::rng::{ChainRng, stream, subsample_rows_to_front};
use crate::shard::{ChainRange, PieceSink};
use crate::{SimError, vmath};
use collapse_analysis::truth::Truth;
use collapse_analysis::{Estimator, GaussianSpec, Strategy};
use rayon::prelude::*;

/// One batch of m standard normals: its draw needs m (exact) or the chi-square(m - 1)
/// constants (sufficient; none for m = 1, whose SS is 0).
#[derive(Clone, Copy)]
pub(super) struct Batch {
    m: u64,
    inv_sqrt_m: f64,
    chi: Option<ChiSquareConstants>,
}

impl Batch {
    fn new(m: u64) -> Batch {
        Batch {
            m,
            inv_sqrt_m: 1.0 / (m as f64).sqrt(),
            chi: (m >= 2).then(|| ChiSquareConstants::new((m - 1) as f64)),
        }
    }

    /// The standardised mean (mean of m standard normals) and SS of this batch for every chain
    /// of `rngs`.
    fn draw(&self, method: Method, rngs: &mut [ChainRng], zbar: &mut [f64], ss: &mut [f64]) {
        match (method, &self.chi) {
            (Method::Exact, _) => kernels::fit_normals_many(rngs, self.m, zbar, ss),
            (Method::Sufficient, Some(chi)) => {
                kernels::sufficient_draw_many(rngs, chi, zbar, ss);
                for z in zbar.iter_mut() {
                    *z *= self.inv_sqrt_m;
                }
            }
            (Method::Sufficient, None) => {
                let normal = StandardNormal::new();
                for ((rng, z), s) in rngs.iter_mut().zip(zbar).zip(ss) {
                    *z = normal.sample(rng);
                    *s = 0.0;
                }
            }
        }
    }

    /// As `draw`, but from `truth` when it is given (a batch of real points of a non-normal
    /// D0, drawn point by point under either method: see the module doc).
    fn draw_from(
        &self,
        truth: Option<Truth>,
        method: Method,
        rngs: &mut [ChainRng],
        zbar: &mut [f64],
        ss: &mut [f64],
    ) {
        match truth {
            Some(truth) => super::fit_truth_sample_many(rngs, truth, self.m, zbar, ss),
            None => self.draw(method, rngs, zbar, ss),
        }
    }
}

/// The truth real points are drawn from: None for the normal truth (drawn as the method's
/// standard normals, as before non-normal truths existed).
pub(super) fn non_normal(spec: &GaussianSpec) -> Option<Truth> {
    (spec.truth != Truth::Normal).then_some(spec.truth)
}

/// What one generation does (for model i+1, i = 0..N-1).
pub(super) enum Plan {
    /// The paper's step (also `mix` with R_i = 0 and `keep` with K = 0).
    Replace,
    /// The pool (mean mu_i, SS = d_prev sigma_i^2, N_{i-1} points) merged with M_i draws of
    /// model i: mu += sigma_i (M_i / N_i) zbar, and
    /// ln sigma^2 += ln(d_prev + ss + (N_{i-1} M_i / N_i) zbar^2) - ln D(N_i).
    Accumulate {
        batch: Batch,
        weight: f64,
        between: f64,
        d_prev: f64,
        ln_divisor: f64,
    },
    /// An anchor of `anchor` points (fresh real draws for `mix`, the kept points for `keep`)
    /// merged with `synth` draws of model i.
    Anchored {
        real: Option<Batch>,
        synth: Option<Batch>,
        anchor: f64,
        synth_count: f64,
        ln_divisor: f64,
    },
}

/// The plan of every generation.
pub(super) fn plans(spec: &GaussianSpec) -> Vec<Plan> {
    let sizes = spec.sample_sizes();
    let est = spec.estimator;
    let ln_d = |n: u64| (est.divisor(n) as f64).ln();
    let kept = spec.strategy.kept(sizes[0]);
    let mut pool = 0u128;
    let mut plans = Vec::with_capacity(sizes.len());
    for &m in &sizes {
        let plan = match spec.strategy {
            Strategy::Replace | Strategy::AccumulateSubsample => Plan::Replace,
            Strategy::Accumulate => {
                // Pool sizes in u128: N up to 10^6 sizes of up to 2^48 points.
                let n = pool + u128::from(m);
                let divisor = |n: u128| match est {
                    Estimator::Unbiased => (n - 1) as f64,
                    Estimator::Mle => n as f64,
                };
                let plan = Plan::Accumulate {
                    batch: Batch::new(m),
                    weight: m as f64 / n as f64,
                    between: pool as f64 * m as f64 / n as f64,
                    d_prev: if pool == 0 { 0.0 } else { divisor(pool) },
                    ln_divisor: divisor(n).ln(),
                };
                pool = n;
                plan
            }
            Strategy::Mix(_) | Strategy::Keep(_) => {
                let anchor = match spec.strategy {
                    Strategy::Mix(_) => spec.strategy.fresh_real(m),
                    _ => kept,
                };
                if anchor == 0 {
                    Plan::Replace
                } else {
                    let synth = m - anchor;
                    Plan::Anchored {
                        real: matches!(spec.strategy, Strategy::Mix(_)).then(|| Batch::new(anchor)),
                        synth: (synth > 0).then(|| Batch::new(synth)),
                        anchor: anchor as f64,
                        synth_count: synth as f64,
                        ln_divisor: ln_d(m),
                    }
                }
            }
        };
        plans.push(plan);
    }
    plans
}

/// The kept points' (mean, SS) of every chain for `keep` with K >= 1 (the first draws of each
/// chain's stream: the K points of D_0 that every training set keeps, drawn from D0); empty
/// otherwise.
pub(super) fn draw_kept(
    spec: &GaussianSpec,
    method: Method,
    rngs: &mut [ChainRng],
) -> Vec<[f64; 2]> {
    let k = spec.strategy.kept(spec.sample_sizes()[0]);
    if k == 0 {
        return Vec::new();
    }
    let batch = Batch::new(k);
    let truth = non_normal(spec);
    let (sigma, sigma2) = (spec.sigma, spec.sigma * spec.sigma);
    let mut kept = vec![[0.0; 2]; rngs.len()];
    rngs.par_chunks_mut(CHUNK)
        .zip(kept.par_chunks_mut(CHUNK))
        .for_each(|(rng, kept)| {
            let len = rng.len();
            let (mut z, mut ss) = ([0.0; CHUNK], [0.0; CHUNK]);
            batch.draw_from(truth, method, rng, &mut z[..len], &mut ss[..len]);
            for c in 0..len {
                kept[c] = [sigma * z[c], sigma2 * ss[c]];
            }
        });
    kept
}

/// One generation of a block of chains under a non-replace plan. `truth` is the non-normal D0
/// (None: normal) and `first` says that this step fits model 1, whose model 0 is D0 itself (so
/// every batch of it is real).
#[allow(clippy::too_many_arguments)]
pub(super) fn advance(
    plan: &Plan,
    method: Method,
    sigma: f64,
    rngs: &mut [ChainRng],
    mean_offset: &mut [f64],
    log_variance: &mut [f64],
    sigma_n: &mut [f64],
    kept: &[[f64; 2]],
    (truth, first): (Option<Truth>, bool),
) {
    let model_truth = truth.filter(|_| first);
    let len = rngs.len();
    assert!(mean_offset.len() == len && log_variance.len() == len && sigma_n.len() == len);
    match plan {
        Plan::Replace => unreachable!("replace runs the paper's step"),
        Plan::Accumulate {
            batch,
            weight,
            between,
            d_prev,
            ln_divisor,
        } => {
            let (mut z, mut ss) = ([0.0; CHUNK], [0.0; CHUNK]);
            let (z, ss) = (&mut z[..len], &mut ss[..len]);
            batch.draw_from(model_truth, method, rngs, z, ss);
            for c in 0..len {
                mean_offset[c] += sigma_n[c] * (weight * z[c]);
                let merged = d_prev + ss[c] + between * z[c] * z[c];
                log_variance[c] += vmath::ln(merged.max(f64::MIN_POSITIVE)) - ln_divisor;
                sigma_n[c] = vmath::exp(0.5 * log_variance[c]);
            }
        }
        Plan::Anchored {
            real,
            synth,
            anchor,
            synth_count,
            ln_divisor,
        } => {
            let (mut zr, mut ssr) = ([0.0; CHUNK], [0.0; CHUNK]);
            let (mut zs, mut sss) = ([0.0; CHUNK], [0.0; CHUNK]);
            // Each chain draws its real batch, then its synthetic batch.
            if let Some(real) = real {
                real.draw_from(truth, method, rngs, &mut zr[..len], &mut ssr[..len]);
            }
            if let Some(synth) = synth {
                synth.draw_from(model_truth, method, rngs, &mut zs[..len], &mut sss[..len]);
            }
            let sigma2 = sigma * sigma;
            let total = anchor + synth_count;
            let between = anchor * synth_count / total;
            for c in 0..len {
                let (xa, ssa) = if real.is_some() {
                    (sigma * zr[c], sigma2 * ssr[c])
                } else {
                    (kept[c][0], kept[c][1])
                };
                let (mean, ss) = if synth.is_some() {
                    let s = sigma_n[c];
                    let xs = mean_offset[c] + s * zs[c];
                    chan_merge(
                        (*anchor, xa, ssa),
                        (*synth_count, xs, s * s * sss[c]),
                        (total, between),
                    )
                } else {
                    (xa, ssa)
                };
                mean_offset[c] = mean;
                log_variance[c] = vmath::ln(ss.max(f64::MIN_POSITIVE)) - ln_divisor;
                sigma_n[c] = vmath::exp(0.5 * log_variance[c]);
            }
        }
    }
}

/// Chan's exact merge of two groups (count, mean, SS) into the union's (mean, SS), given
/// total = a + b and between = a b / (a + b).
#[inline]
fn chan_merge(
    (a, xa, ssa): (f64, f64, f64),
    (b, xb, ssb): (f64, f64, f64),
    (total, between): (f64, f64),
) -> (f64, f64) {
    let d = xa - xb;
    ((a * xa + b * xb) / total, ssa + ssb + between * d * d)
}

/// Checks a strategy against a method and the memory it needs, before any work.
pub(super) fn check(spec: &GaussianSpec, config: &EnsembleConfig) -> Result<(), SimError> {
    let sizes = spec.sample_sizes();
    spec.strategy.validate(&sizes)?;
    if spec.strategy != Strategy::AccumulateSubsample {
        return Ok(());
    }
    if config.method == Method::Sufficient {
        return Err(SimError::Invalid {
            what: "method",
            why: "accumulate-subsample trains on subsamples of the individual points drawn so \
                  far, which sufficient statistics do not determine: use --method exact"
                .into(),
        });
    }
    let pool: u64 = sizes.iter().fold(0u64, |a, &m| a.saturating_add(m));
    if pool > MAX_POOL {
        return Err(SimError::Invalid {
            what: "schedule",
            why: format!(
                "accumulate-subsample keeps every point of a chain: M_0 + ... + M_(N-1) = {pool} \
                 exceeds {MAX_POOL}"
            ),
        });
    }
    let values = config.chains.saturating_mul(spec.generations + 1);
    if values > MAX_TRACE {
        return Err(SimError::Invalid {
            what: "chains",
            why: format!(
                "accumulate-subsample runs chain by chain and keeps every chain's state per \
                 generation: chains x (generations + 1) = {values} exceeds {MAX_TRACE}"
            ),
        });
    }
    Ok(())
}

/// Largest pool of one chain of `accumulate-subsample` (points; 8 bytes each, one pool per
/// worker thread).
pub const MAX_POOL: u64 = 1 << 26;
/// Largest chains x (generations + 1) of `accumulate-subsample` (16 bytes each).
pub const MAX_TRACE: u64 = 20_000_000;

/// Mean and sum of squared deviations, in two passes in slice order.
fn mean_and_ss(x: &[f64]) -> (f64, f64) {
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let ss = x.iter().map(|&v| (v - mean) * (v - mean)).sum();
    (mean, ss)
}

/// One chain of `accumulate-subsample` through all generations: (mu_n - mu, ln sigma_n^2) for
/// n = 1..=N written at `stride` intervals from `offset` of `means` and `logs`. The first M_0
/// points of the pool are drawn from `truth` (None: the normal truth).
#[allow(clippy::too_many_arguments)]
fn subsample_chain(
    rng: &mut ChainRng,
    sizes: &[u64],
    divisors: &[f64],
    (sigma, truth): (f64, Option<Truth>),
    pool: &mut Vec<f64>,
    means: &mut [f64],
    logs: &mut [f64],
    (offset, stride): (usize, usize),
) {
    let normal = StandardNormal::new();
    pool.clear();
    for _ in 0..sizes[0] {
        let z = normal.sample(rng);
        pool.push(sigma * truth.map_or(z, |t| t.at_normal_score(z)));
    }
    for (i, &m) in sizes.iter().enumerate() {
        let m = m as usize;
        subsample_rows_to_front(pool, 1, m, rng);
        let (mean, ss) = mean_and_ss(&pool[..m]);
        let variance = ss / divisors[i];
        let at = offset + (i + 1) * stride;
        means[at] = mean;
        logs[at] = vmath::ln(variance.max(f64::MIN_POSITIVE));
        if let Some(&next) = sizes.get(i + 1) {
            let sd = variance.sqrt();
            for _ in 0..next {
                pool.push(mean + sd * normal.sample(rng));
            }
        }
    }
}

/// `accumulate-subsample`, chain-major (see the module doc): the same statistics as `run`, in
/// the same fixed block order, so the output does not depend on the thread count.
pub(super) fn run_subsample(
    spec: &GaussianSpec,
    config: &EnsembleConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    let span = super::LAYOUT.span(owned, config.chains);
    let (offset, owned_len) = ((owned.start - span.start) as usize, owned.len() as usize);
    let sigma = spec.sigma;
    let log_sigma2 = (sigma * sigma).ln();
    let collapse_threshold = log_sigma2 + (1e-6f64).ln();
    let sizes = spec.sample_sizes();
    let divisors: Vec<f64> = sizes
        .iter()
        .map(|&m| spec.estimator.divisor(m) as f64)
        .collect();
    let pool_len: u64 = sizes.iter().sum();
    let truth = non_normal(spec);
    // W2 to D0 gains 2 sigma (1 - rho) sigma_n for n >= 1 (as in `run`).
    let shape = 2.0 * sigma * (1.0 - spec.truth.comonotone_correlation().rho);
    let gens = spec.generations as usize;
    let r = span.len() as usize;
    let blocks: Vec<(usize, usize)> = (0..r)
        .step_by(CHUNK)
        .map(|lo| (lo, CHUNK.min(r - lo)))
        .collect();
    let first_chain = span.start;
    if sink.stopped() {
        return Err(SimError::Interrupted);
    }
    // Per block, generation-major: (mu_n - mu) and ln sigma_n^2 of its chains.
    let traces: Vec<(Vec<f64>, Vec<f64>)> = blocks
        .par_iter()
        .map(|&(lo, len)| {
            let mut means = vec![0.0; (gens + 1) * len];
            let mut logs = vec![log_sigma2; (gens + 1) * len];
            let mut pool = Vec::with_capacity(pool_len as usize);
            for j in 0..len {
                let mut rng = ChainRng::for_chain(
                    config.seed,
                    stream::GAUSSIAN,
                    first_chain + (lo + j) as u64,
                );
                subsample_chain(
                    &mut rng,
                    &sizes,
                    &divisors,
                    (sigma, truth),
                    &mut pool,
                    &mut means,
                    &mut logs,
                    (j, len),
                );
            }
            (means, logs)
        })
        .collect();
    let mut log_variances = vec![0.0; r];
    let mut w2s = vec![0.0; r];
    for n in 0..=gens {
        if n > 0 && sink.stopped() {
            return Err(SimError::Interrupted);
        }
        let stats: Vec<BlockStats> = traces
            .par_iter()
            .zip(log_variances.par_chunks_mut(CHUNK))
            .zip(w2s.par_chunks_mut(CHUNK))
            .map(|(((means, logs), lv_out), w2)| {
                let len = lv_out.len();
                let mean_offset = &means[n * len..(n + 1) * len];
                lv_out.copy_from_slice(&logs[n * len..(n + 1) * len]);
                let mut sigma_n = [sigma; CHUNK];
                if n > 0 {
                    for (s, &lv) in sigma_n.iter_mut().zip(lv_out.iter()) {
                        *s = vmath::exp(0.5 * lv);
                    }
                }
                block_stats(
                    mean_offset,
                    lv_out,
                    &sigma_n[..len],
                    w2,
                    sigma,
                    collapse_threshold,
                    if n == 0 { 0.0 } else { shape },
                )
            })
            .collect();
        super::emit(
            sink,
            n as u64,
            &stats,
            (&log_variances, &w2s),
            (offset, owned_len),
        );
    }
    let (mut mean_ends, mut log_ends) = (Vec::with_capacity(r), Vec::with_capacity(r));
    for (means, logs) in &traces {
        let len = means.len() / (gens + 1);
        mean_ends.extend_from_slice(&means[gens * len..]);
        log_ends.extend_from_slice(&logs[gens * len..]);
    }
    let owned_range = offset..offset + owned_len;
    Ok(super::end_words(
        &mean_ends[owned_range.clone()],
        &log_ends[owned_range],
    ))
}

#[cfg(test)]
mod tests;
