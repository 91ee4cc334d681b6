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
//! `accumulate-subsample` needs the individual points and is not simulated in d dimensions yet
//! (refused with a one-line error).

use super::{CHUNK, MvnConfig};
use super::{
    MvnMethod, Slot, Stepper, cholesky_in_place, diag_index, dot, form_covariance, ldexp,
    ln_positive, packed_index, packed_len, rank_one_update, renormalise,
};
use crate::SimError;
use crate::kernels::ChiSquareConstants;
use crate::rng::ChainRng;
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
pub(super) fn check(spec: &MvnSpec, _config: &MvnConfig) -> Result<(), SimError> {
    if spec.strategy == Strategy::AccumulateSubsample {
        return Err(SimError::Invalid {
            what: "strategy",
            why: "accumulate-subsample is simulated in one dimension only so far (collapse \
                  simulate gaussian --strategy accumulate-subsample); its d-dimensional theory \
                  is `collapse theory mvn --strategy accumulate-subsample`"
                .into(),
        });
    }
    Ok(())
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
