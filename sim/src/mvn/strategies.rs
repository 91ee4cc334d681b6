//! The data strategies of the d-dimensional ensemble (theory: `collapse_analysis::mvn::
//! strategy_theory`, derivation: `proofs/strategies.md` §10).
//!
//! As in one dimension (`crate::gaussian::strategies`), every training set is a union of
//! batches, and a batch of m standard normal vectors enters only through its mean zbar and its
//! scatter Q: `exact` draws the m vectors (Welford), `sufficient` draws zbar ~ N(0, I/m) and
//! Q ~ Wishart_d(I, m - 1) by the Bartlett decomposition (Q = C C^T; for m - 1 < d, as the sum
//! of m - 1 outer products of normal vectors). Batches merge exactly by Chan's formula
//! scatter = Q_a + Q_b + (a b / (a + b)) (xbar_a - xbar_b)(xbar_a - xbar_b)^T.
//!
//! - `accumulate` runs in the current model's frame: the pool's mean is mu_i and its scatter is
//!   D(N_{i-1}) Sigma_i = L_i (D(N_{i-1}) I) L_i^T, so with T = chol(D(N_{i-1}) I + Q +
//!   (N_{i-1} M_i / N_i) zbar zbar^T): mu_{i+1} = mu_i + L_i (M_i / N_i) zbar and
//!   L_{i+1} = L_i T / sqrt(N_i - 1), exactly as replace's step (which is the case N_{i-1} = 0).
//! - `mix:F` and `keep:F` merge an anchor (fresh real draws, or the K kept points of D_0 drawn
//!   first on each chain's stream) with the synthetic batch in coordinates centred at mu_i and
//!   scaled by 2^-e (the factor's exponent: exact), then factor the merged covariance.
//!
//! Each chain draws, per generation, its real batch (mix) and then its synthetic batch.
//!
//! `accumulate-subsample` needs the individual points (later subsamples reuse them), so it runs
//! chain-major as in one dimension: one chain at a time through all generations, its pool of
//! d-vectors in one buffer (rows in world coordinates), the M_i training rows moved to the
//! front by a partial Fisher–Yates shuffle and fitted literally (two-pass mean, then the scatter
//! of the centred rows, then Cholesky). Its real data never leave the pool, so Sigma_n does not
//! collapse and world coordinates lose nothing. Each chain's statistics are kept per generation
//! and reduced generation by generation in block order, as `run` does. Draw order per chain: the
//! M_0 real vectors (d normals each, coordinate order: the same points as replace's first
//! generation with `exact`), then per generation the subsample's picks and the M_{i+1} vectors
//! of the new model.

use super::{BlockStats, CHUNK, ChainState, MvnConfig, QUANTITIES, W2};
use super::{
    MvnMethod, Slot, Stepper, cholesky_in_place, diag_index, dot, form_covariance, ldexp,
    ln_positive, packed_index, packed_len, rank_one_update, renormalise,
};
use crate::SimError;
use crate::kernels::ChiSquareConstants;
use crate::rng::{ChainRng, stream, subsample_rows_to_front};
use crate::shard::{ChainRange, PieceSink};
use crate::stats::Accumulator;
use collapse_analysis::{MvnSpec, Strategy};
use rayon::prelude::*;

/// One batch of m standard normal vectors in d dimensions.
pub(super) struct Batch {
    m: u64,
    /// chi^2_{m-1-j} constants, j = 0..d-1, when m - 1 >= d (Bartlett); empty otherwise.
    chi: Vec<ChiSquareConstants>,
}

impl Batch {
    fn new(m: u64, d: usize) -> Batch {
        let k = m - 1;
        let chi = if k >= d as u64 {
            (0..d as u64)
                .map(|j| ChiSquareConstants::new((k - j) as f64))
                .collect()
        } else {
            Vec::new()
        };
        Batch { m, chi }
    }

    /// The batch's mean into `zbar` and its scatter (packed) into `scatter`.
    fn draw(
        &self,
        method: MvnMethod,
        stepper: &mut Stepper,
        rng: &mut ChainRng,
        zbar: &mut [f64],
        scatter: &mut [f64],
    ) {
        let d = stepper.d;
        match method {
            MvnMethod::Exact => {
                stepper.scatter_exact(rng, self.m);
                zbar.copy_from_slice(&stepper.v);
                scatter.copy_from_slice(&stepper.tri);
            }
            MvnMethod::Sufficient => {
                let scale = 1.0 / (self.m as f64).sqrt();
                for z in zbar.iter_mut() {
                    *z = stepper.normal.sample(rng) * scale;
                }
                if self.chi.is_empty() {
                    scatter.fill(0.0);
                    for _ in 1..self.m {
                        let g = &mut stepper.deltas[..d];
                        for x in g.iter_mut() {
                            *x = stepper.normal.sample(rng);
                        }
                        rank_one_update(scatter, g, d, 1.0);
                    }
                } else {
                    for j in 0..d {
                        let start = packed_index(j, 0);
                        for c in &mut stepper.tri[start..start + j] {
                            *c = stepper.normal.sample(rng);
                        }
                        stepper.tri[start + j] = self.chi[j].sample(rng).sqrt();
                    }
                    form_covariance(&stepper.tri, d, scatter);
                }
            }
        }
    }
}

/// What one generation does (for model i+1, i = 0..N-1).
pub(super) enum Plan {
    /// The paper's step (also `mix` with R_i = 0 and `keep` with K = 0).
    Replace,
    Accumulate {
        batch: Batch,
        /// M_i / N_i.
        weight: f64,
        /// N_{i-1} M_i / N_i.
        between: f64,
        /// D(N_{i-1}) = N_{i-1} - 1 (0 for the first generation).
        d_prev: f64,
        /// D(N_i) = N_i - 1.
        divisor: f64,
    },
    /// An anchor of `anchor` points (fresh real draws for `mix`, the kept points for `keep`)
    /// merged with `synth_count` draws of model i.
    Anchored {
        real: Option<Batch>,
        synth: Option<Batch>,
        anchor: f64,
        synth_count: f64,
        /// M_i - 1.
        divisor: f64,
    },
}

/// The plan of every generation (as `crate::gaussian::strategies::plans`, unbiased).
pub(super) fn plans(spec: &MvnSpec) -> Vec<Plan> {
    let d = spec.dim;
    let sizes = spec.sample_sizes();
    let kept = spec.strategy.kept(sizes[0]);
    let mut pool = 0u128;
    let mut plans = Vec::with_capacity(sizes.len());
    for &m in &sizes {
        let plan = match spec.strategy {
            Strategy::Replace | Strategy::AccumulateSubsample => Plan::Replace,
            Strategy::Accumulate => {
                let n = pool + u128::from(m);
                let plan = Plan::Accumulate {
                    batch: Batch::new(m, d),
                    weight: m as f64 / n as f64,
                    between: pool as f64 * m as f64 / n as f64,
                    d_prev: if pool == 0 { 0.0 } else { (pool - 1) as f64 },
                    divisor: (n - 1) as f64,
                };
                pool = n;
                plan
            }
            Strategy::Mix(_) | Strategy::Keep(_) => {
                let mix = matches!(spec.strategy, Strategy::Mix(_));
                let anchor = if mix {
                    spec.strategy.fresh_real(m)
                } else {
                    kept
                };
                if anchor == 0 {
                    Plan::Replace
                } else {
                    let synth = m - anchor;
                    Plan::Anchored {
                        real: mix.then(|| Batch::new(anchor, d)),
                        synth: (synth > 0).then(|| Batch::new(synth, d)),
                        anchor: anchor as f64,
                        synth_count: synth as f64,
                        divisor: (m - 1) as f64,
                    }
                }
            }
        };
        plans.push(plan);
    }
    plans
}

/// Refuses what the d-dimensional ensemble does not run, before any work.
pub(super) fn check(spec: &MvnSpec, config: &MvnConfig) -> Result<(), SimError> {
    if spec.strategy != Strategy::AccumulateSubsample {
        return Ok(());
    }
    if config.method == MvnMethod::Sufficient {
        return Err(SimError::Invalid {
            what: "method",
            why: "accumulate-subsample trains on subsamples of the individual points drawn so \
                  far, which sufficient statistics do not determine: use --method exact"
                .into(),
        });
    }
    let points = spec
        .sample_sizes()
        .iter()
        .fold(0u64, |a, &m| a.saturating_add(m));
    let pool = points.saturating_mul(spec.dim as u64);
    if pool > MAX_SUBSAMPLE_POOL {
        return Err(SimError::Invalid {
            what: "schedule",
            why: format!(
                "accumulate-subsample keeps every point of a chain: D x (M_0 + ... + M_(N-1)) = \
                 {pool} values exceeds {MAX_SUBSAMPLE_POOL}"
            ),
        });
    }
    let cap = max_subsample_chains(spec.generations);
    if config.chains > cap {
        return Err(SimError::Invalid {
            what: "chains",
            why: format!(
                "accumulate-subsample runs chain by chain and keeps {QUANTITIES} statistics per \
                 chain and generation: at most {cap} chains for {} generations (got {})",
                spec.generations, config.chains
            ),
        });
    }
    Ok(())
}

/// Largest pool of one chain of `accumulate-subsample`, in values (d per point; 8 bytes each,
/// one pool per worker thread).
pub const MAX_SUBSAMPLE_POOL: u64 = 1 << 26;
/// Largest number of per-chain statistics `accumulate-subsample` keeps (8 bytes each: 320 MB).
pub const MAX_SUBSAMPLE_TRACE: u64 = 40_000_000;

/// The most chains `accumulate-subsample` runs for N generations: it keeps every chain's
/// statistics per generation (`MAX_SUBSAMPLE_TRACE` values in all).
pub fn max_subsample_chains(generations: u64) -> u64 {
    MAX_SUBSAMPLE_TRACE
        / (generations
            .saturating_add(1)
            .saturating_mul(QUANTITIES as u64))
}

/// Mean (two passes: the sum in row order, then divided) and scatter of the centred rows of
/// `rows` (rows of d values), packed, into `mean` and `scatter`.
fn fit_rows(rows: &[f64], d: usize, mean: &mut [f64], scatter: &mut [f64], centred: &mut [f64]) {
    let m = rows.len() / d;
    mean.fill(0.0);
    for x in rows.chunks_exact(d) {
        for (s, &v) in mean.iter_mut().zip(x) {
            *s += v;
        }
    }
    for s in mean.iter_mut() {
        *s /= m as f64;
    }
    scatter.fill(0.0);
    for x in rows.chunks_exact(d) {
        for ((c, &v), &mu) in centred.iter_mut().zip(x).zip(mean.iter()) {
            *c = v - mu;
        }
        rank_one_update(scatter, centred, d, 1.0);
    }
}

/// One chain of `accumulate-subsample` through all generations. Writes its statistics of
/// generation n, quantity q at `trace[(n * QUANTITIES + q) * len + c]` and leaves its final
/// model in `state`.
#[allow(clippy::too_many_arguments)]
fn subsample_chain(
    stepper: &mut Stepper,
    scratch: &mut Scratch,
    rng: &mut ChainRng,
    sizes: &[u64],
    pool: &mut Vec<f64>,
    state: &mut ChainState,
    trace: &mut [f64],
    (c, len): (usize, usize),
) {
    let d = stepper.d;
    let mut record = |n: usize, stepper: &mut Stepper, state: &ChainState| {
        let values = stepper
            .statistics_of(&state.mean, &state.factor, state.exponent, state.log_det)
            .to_array();
        for (q, v) in values.into_iter().enumerate() {
            trace[(n * QUANTITIES + q) * len + c] = v;
        }
    };
    record(0, stepper, state);
    pool.clear();
    for _ in 0..sizes[0] {
        for j in 0..d {
            let z = stepper.normal.sample(rng);
            pool.push(stepper.truth.sqrt_diag[j] * z);
        }
    }
    for (i, &m) in sizes.iter().enumerate() {
        let m = m as usize;
        subsample_rows_to_front(pool, d, m, rng);
        fit_rows(
            &pool[..m * d],
            d,
            &mut state.mean,
            &mut stepper.tri,
            &mut stepper.row,
        );
        let divisor = (m - 1) as f64;
        for t in stepper.tri.iter_mut() {
            *t /= divisor;
        }
        cholesky_in_place(&mut stepper.tri, d);
        state.factor.copy_from_slice(&stepper.tri);
        state.log_det = 2.0
            * (0..d)
                .map(|j| ln_positive(state.factor[diag_index(j)]))
                .sum::<f64>();
        state.exponent = 0;
        renormalise(&mut state.factor, &mut state.exponent);
        record(i + 1, stepper, state);
        if let Some(&next) = sizes.get(i + 1) {
            // x = mu_{i+1} + L_{i+1} z, L = 2^e L~.
            for _ in 0..next {
                for z in scratch.zbar.iter_mut() {
                    *z = stepper.normal.sample(rng);
                }
                for r in 0..d {
                    let row = &state.factor[packed_index(r, 0)..=diag_index(r)];
                    let x = state.mean[r] + ldexp(dot(row, &scratch.zbar[..=r]), state.exponent);
                    pool.push(x);
                }
            }
        }
    }
}

/// `accumulate-subsample`, chain-major (see the module doc): the chains of `owned`'s span, the
/// same rows as `run` would compute, reduced in the same fixed block order, so the output does
/// not depend on the thread count or on how the chains are split into pieces.
pub(super) fn run_subsample(
    spec: &MvnSpec,
    config: &MvnConfig,
    owned: ChainRange,
    sink: &mut dyn PieceSink,
) -> Result<Vec<u64>, SimError> {
    // The chain phase below runs every generation before any is emitted: a stop request is
    // honoured before it starts and as soon as it ends, not only between emitted generations.
    if sink.stopped() {
        return Err(SimError::Interrupted);
    }
    let d = spec.dim;
    let span = super::LAYOUT.span(owned, config.chains);
    let (offset, owned_len) = ((owned.start - span.start) as usize, owned.len() as usize);
    let r = span.len() as usize;
    let gens = spec.generations as usize;
    let sizes = spec.sample_sizes();
    let pool_len = sizes.iter().sum::<u64>() as usize * d;
    let blocks: Vec<(usize, usize)> = (0..r)
        .step_by(CHUNK)
        .map(|lo| (lo, CHUNK.min(r - lo)))
        .collect();
    // Per block: its statistics (generation-major) and its chains' final models.
    let traces: Vec<(Vec<f64>, Vec<ChainState>)> = blocks
        .par_iter()
        .map_init(
            || (Stepper::of_valid(spec), Scratch::new(d), Vec::new()),
            |(stepper, scratch, pool), &(lo, len)| {
                pool.reserve(pool_len);
                let mut trace = vec![0.0; (gens + 1) * QUANTITIES * len];
                let finals = (0..len)
                    .map(|c| {
                        // The global chain index: a piece draws the same streams as the whole run.
                        let chain = span.start + (lo + c) as u64;
                        let mut rng = ChainRng::for_chain(config.seed, stream::MVN, chain);
                        let mut state = ChainState::truth(spec);
                        subsample_chain(
                            stepper,
                            scratch,
                            &mut rng,
                            &sizes,
                            pool,
                            &mut state,
                            &mut trace,
                            (c, len),
                        );
                        state
                    })
                    .collect();
                (trace, finals)
            },
        )
        .collect();
    if sink.stopped() {
        return Err(SimError::Interrupted);
    }
    let mut w2s = vec![0.0; r];
    for n in 0..=gens {
        if n > 0 && sink.stopped() {
            return Err(SimError::Interrupted);
        }
        let stats: Vec<BlockStats> = traces
            .iter()
            .zip(w2s.chunks_mut(CHUNK))
            .map(|((trace, _), w2)| {
                let len = w2.len();
                let at = |q: usize| &trace[(n * QUANTITIES + q) * len..][..len];
                w2.copy_from_slice(at(W2));
                BlockStats {
                    acc: std::array::from_fn(|q| Accumulator::from_slice(at(q))),
                }
            })
            .collect();
        super::emit(sink, n as u64, &stats, &w2s, (offset, owned_len));
    }
    let finals = traces.iter().flat_map(|(_, finals)| finals);
    let mut ends = Vec::with_capacity(owned_len * super::end_len(d));
    for state in finals.skip(offset).take(owned_len) {
        super::push_end(
            &mut ends,
            &state.mean,
            &state.factor,
            state.exponent,
            state.log_det,
        );
    }
    Ok(ends)
}

/// Scratch space of the strategies' steps (no allocation per step).
pub(super) struct Scratch {
    zbar: Vec<f64>,
    scatter: Vec<f64>,
    anchor_mean: Vec<f64>,
    anchor_scatter: Vec<f64>,
    /// A full d x d product (row-major).
    work: Vec<f64>,
}

impl Scratch {
    pub(super) fn new(d: usize) -> Scratch {
        Scratch {
            zbar: vec![0.0; d],
            scatter: vec![0.0; packed_len(d)],
            anchor_mean: vec![0.0; d],
            anchor_scatter: vec![0.0; packed_len(d)],
            work: vec![0.0; d * d],
        }
    }
}

/// Length of one chain's kept data: the kept points' mean (d) and scatter (packed).
fn kept_len(d: usize) -> usize {
    d + packed_len(d)
}

/// The kept points' mean and scatter (world coordinates, mu = 0) of chain `chain`, or an empty
/// slice when nothing is kept.
pub(super) fn kept_of(kept: &[f64], d: usize, chain: usize) -> &[f64] {
    let len = kept_len(d);
    kept.get(chain * len..(chain + 1) * len).unwrap_or(&[])
}

/// For `keep` with K >= 1, every chain's K points of D_0 (the first draws of its stream), as
/// their mean and scatter in world coordinates; empty otherwise.
pub(super) fn draw_kept(spec: &MvnSpec, method: MvnMethod, rngs: &mut [ChainRng]) -> Vec<f64> {
    let k = spec.strategy.kept(spec.sample_sizes()[0]);
    if k == 0 || !matches!(spec.strategy, Strategy::Keep(_)) {
        return Vec::new();
    }
    let d = spec.dim;
    let len = kept_len(d);
    let batch = Batch::new(k, d);
    let mut kept = vec![0.0; rngs.len() * len];
    rngs.par_chunks_mut(CHUNK)
        .zip(kept.par_chunks_mut(CHUNK * len))
        .for_each_init(
            || (Stepper::of_valid(spec), Scratch::new(d)),
            |(stepper, scratch), (rngs, kept)| {
                for (rng, out) in rngs.iter_mut().zip(kept.chunks_mut(len)) {
                    batch.draw(
                        method,
                        stepper,
                        rng,
                        &mut scratch.zbar,
                        &mut scratch.scatter,
                    );
                    let (mean, scatter) = out.split_at_mut(d);
                    to_world(
                        &stepper.truth.sqrt_diag,
                        &scratch.zbar,
                        &scratch.scatter,
                        mean,
                        scatter,
                    );
                }
            },
        );
    kept
}

/// Standard coordinates to the truth's: x = D^{1/2} z, so mean = D^{1/2} zbar and scatter =
/// D^{1/2} Q D^{1/2}.
fn to_world(sqrt_diag: &[f64], zbar: &[f64], q: &[f64], mean: &mut [f64], scatter: &mut [f64]) {
    let d = zbar.len();
    for j in 0..d {
        mean[j] = sqrt_diag[j] * zbar[j];
    }
    for i in 0..d {
        for j in 0..=i {
            scatter[packed_index(i, j)] = sqrt_diag[i] * sqrt_diag[j] * q[packed_index(i, j)];
        }
    }
}

/// One generation of one chain under a non-replace plan.
pub(super) struct Step<'a> {
    pub(super) plan: &'a Plan,
    pub(super) method: MvnMethod,
    /// The chain's kept data (`kept_of`).
    pub(super) kept: &'a [f64],
}

impl Step<'_> {
    pub(super) fn advance(
        &self,
        stepper: &mut Stepper,
        s: &mut Scratch,
        rng: &mut ChainRng,
        slot: Slot<'_>,
    ) {
        let d = stepper.d;
        let Slot {
            mean,
            factor,
            exponent,
            log_det,
        } = slot;
        match self.plan {
            Plan::Replace => unreachable!("replace runs the paper's step"),
            Plan::Accumulate {
                batch,
                weight,
                between,
                d_prev,
                divisor,
            } => {
                batch.draw(self.method, stepper, rng, &mut s.zbar, &mut s.scatter);
                let a = &mut s.scatter;
                for j in 0..d {
                    a[diag_index(j)] += d_prev;
                }
                rank_one_update(a, &s.zbar, d, *between);
                cholesky_in_place(a, d);
                let slot = Slot {
                    mean,
                    factor,
                    exponent,
                    log_det,
                };
                Stepper::apply_step(slot, &s.zbar, *weight, a, &mut stepper.row, *divisor);
            }
            Plan::Anchored {
                real,
                synth,
                anchor,
                synth_count,
                divisor,
            } => {
                let e = *exponent;
                // The anchor, centred at mu_i and scaled by 2^-e.
                if let Some(real) = real {
                    real.draw(self.method, stepper, rng, &mut s.zbar, &mut s.scatter);
                    to_world(
                        &stepper.truth.sqrt_diag,
                        &s.zbar,
                        &s.scatter,
                        &mut s.anchor_mean,
                        &mut s.anchor_scatter,
                    );
                } else {
                    let (m, q) = self.kept.split_at(d);
                    s.anchor_mean.copy_from_slice(m);
                    s.anchor_scatter.copy_from_slice(q);
                }
                for (a, mu) in s.anchor_mean.iter_mut().zip(mean.iter()) {
                    *a = ldexp(*a - *mu, -e);
                }
                for q in s.anchor_scatter.iter_mut() {
                    *q = ldexp(*q, -2 * e);
                }
                // The synthetic batch in the same coordinates: mean L~ zbar, scatter L~ Q L~^T.
                if let Some(synth) = synth {
                    synth.draw(self.method, stepper, rng, &mut s.zbar, &mut s.scatter);
                    let merged_mean = &mut stepper.v;
                    let total = anchor + synth_count;
                    let between = anchor * synth_count / total;
                    congruence(factor, &s.scatter, d, &mut s.work, &mut stepper.tri);
                    for i in 0..d {
                        let row = &factor[packed_index(i, 0)..=diag_index(i)];
                        let xs = dot(row, &s.zbar[..=i]);
                        let xa = s.anchor_mean[i];
                        merged_mean[i] = (anchor * xa + synth_count * xs) / total;
                        stepper.deltas[i] = xa - xs;
                    }
                    for (t, a) in stepper.tri.iter_mut().zip(&s.anchor_scatter) {
                        *t += a;
                    }
                    rank_one_update(&mut stepper.tri, &stepper.deltas[..d], d, between);
                } else {
                    stepper.v.copy_from_slice(&s.anchor_mean);
                    stepper.tri.copy_from_slice(&s.anchor_scatter);
                }
                for (mu, x) in mean.iter_mut().zip(&stepper.v) {
                    *mu += ldexp(*x, e);
                }
                for t in stepper.tri.iter_mut() {
                    *t /= divisor;
                }
                cholesky_in_place(&mut stepper.tri, d);
                factor.copy_from_slice(&stepper.tri);
                let ln_l: f64 = (0..d).map(|j| ln_positive(factor[diag_index(j)])).sum();
                *log_det = 2.0 * ln_l + 2.0 * d as f64 * f64::from(e) * std::f64::consts::LN_2;
                renormalise(factor, exponent);
            }
        }
    }
}

/// `out` = L Q L^T (packed) for a packed lower-triangular L and a packed symmetric Q, through
/// the full product B = L Q in `work` (d^3 / 2 + d^3 / 6 multiply-adds).
fn congruence(l: &[f64], q: &[f64], d: usize, work: &mut [f64], out: &mut [f64]) {
    let sym = |i: usize, j: usize| q[packed_index(i.max(j), i.min(j))];
    for i in 0..d {
        let row = &l[packed_index(i, 0)..=diag_index(i)];
        for c in 0..d {
            work[i * d + c] = row.iter().enumerate().map(|(k, &x)| x * sym(k, c)).sum();
        }
    }
    for i in 0..d {
        for j in 0..=i {
            let lj = &l[packed_index(j, 0)..=diag_index(j)];
            out[packed_index(i, j)] = dot(&work[i * d..i * d + j + 1], lj);
        }
    }
}

#[cfg(test)]
mod tests;
