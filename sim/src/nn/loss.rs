//! The VAE's losses: Bernoulli cross-entropy on logits, the Gaussian KL divergence to the
//! standard normal prior, and the reparameterised draw of the latent code.

use super::simd::{PIECE, exp, ln_1p, sigmoid_and_exp_neg_abs, vectorised};
use crate::normal::StandardNormal;
use crate::rng::ChainRng;
use rayon::prelude::*;

/// Lanes of the `f64` loss accumulators (the sum is taken lane by lane, then over lanes in
/// order: a fixed order that the compiler can vectorise).
const LANES: usize = 8;

fn sum_lanes(acc: [f64; LANES]) -> f64 {
    acc.iter().sum()
}

/// Elements per block of the loss kernels: each block's terms go to a small buffer in one
/// simple loop (which the compiler vectorises), then into the lane accumulators.
const BLOCK: usize = 64;

vectorised! {
    fn bce_piece(z: &[f32], t: &[f32], scale: f32, dz: &mut [f32]) -> f64 {
        let mut acc = [0.0f64; LANES];
        let mut terms = [0.0f32; BLOCK];
        for ((z, t), dz) in z.chunks(BLOCK).zip(t.chunks(BLOCK)).zip(dz.chunks_mut(BLOCK)) {
            let n = z.len();
            for (((&z, &t), dz), term) in z.iter().zip(t).zip(dz.iter_mut()).zip(&mut terms[..n]) {
                let (s, e) = sigmoid_and_exp_neg_abs(z);
                *dz = scale * (s - t);
                let relu = if z > 0.0 { z } else { 0.0 };
                *term = relu - z * t + ln_1p(e);
            }
            // Element i of the piece always goes to lane i % LANES (BLOCK is a multiple of
            // LANES): a fixed order.
            for (i, &v) in terms[..n].iter().enumerate() {
                acc[i % LANES] += f64::from(v);
            }
        }
        sum_lanes(acc)
    }
}

/// Bernoulli cross-entropy of targets `t` in [0, 1] under logits `z` (probabilities
/// sigmoid(z)), **summed** over every element (pixels and batch) and multiplied by `scale`:
///
/// L = scale * sum_i [max(z_i, 0) - z_i t_i + ln(1 + e^{-|z_i|})]
///   = scale * sum_i -[t_i ln sigmoid(z_i) + (1 - t_i) ln(1 - sigmoid(z_i))],
///
/// the stable form (no overflow, no log of 0). `scale = 1` is PyTorch's
/// `binary_cross_entropy(..., reduction="sum")` of the VAE example the paper builds on;
/// `scale = 1 / batch` gives the mean over the batch. Writes dL/dz_i = scale (sigmoid(z_i) -
/// t_i) into `dz` and returns L (per-element terms in `f32`, summed in `f64`).
pub fn bce_with_logits(z: &[f32], t: &[f32], scale: f32, dz: &mut [f32]) -> f64 {
    assert!(z.len() == t.len() && z.len() == dz.len());
    let pieces: Vec<f64> = dz
        .par_chunks_mut(PIECE)
        .zip(z.par_chunks(PIECE).zip(t.par_chunks(PIECE)))
        .map(|(dz, (z, t))| bce_piece(z, t, scale, dz))
        .collect();
    // In piece order, so the sum does not depend on the thread count.
    f64::from(scale) * pieces.iter().sum::<f64>()
}

vectorised! {
    fn kl_piece(mu: &[f32], logvar: &[f32], scale: f32, dmu: &mut [f32], dlogvar: &mut [f32]) -> f64 {
        #[inline(always)]
        fn one(mu: f32, lv: f32, scale: f32, dmu: &mut f32, dlv: &mut f32) -> f32 {
            let var = exp(lv);
            *dmu = scale * mu;
            *dlv = scale * (0.5 * (var - 1.0));
            -0.5 * (1.0 + lv - mu * mu - var)
        }
        let mut acc = [0.0f64; LANES];
        let whole = mu.len() - mu.len() % LANES;
        for (((mu, lv), dmu), dlv) in mu[..whole]
            .chunks_exact(LANES)
            .zip(logvar[..whole].chunks_exact(LANES))
            .zip(dmu[..whole].chunks_exact_mut(LANES))
            .zip(dlogvar[..whole].chunks_exact_mut(LANES))
        {
            for l in 0..LANES {
                acc[l] += f64::from(one(mu[l], lv[l], scale, &mut dmu[l], &mut dlv[l]));
            }
        }
        for (l, i) in (whole..mu.len()).enumerate() {
            acc[l] += f64::from(one(mu[i], logvar[i], scale, &mut dmu[i], &mut dlogvar[i]));
        }
        sum_lanes(acc)
    }
}

/// KL(N(mu, diag e^logvar) || N(0, I)) summed over latent coordinates and the batch, times
/// `scale` (as `bce_with_logits`: 1 for the sum, 1 / batch for the mean):
///
/// L = scale * sum_i -1/2 (1 + logvar_i - mu_i^2 - e^{logvar_i}),
///
/// writing dL/dmu_i = scale mu_i and dL/dlogvar_i = scale (e^{logvar_i} - 1) / 2. `logvar` is
/// clamped to [-87, 88] inside the exponential (beyond that e^logvar leaves `f32`).
pub fn gaussian_kl(
    mu: &[f32],
    logvar: &[f32],
    scale: f32,
    dmu: &mut [f32],
    dlogvar: &mut [f32],
) -> f64 {
    let n = mu.len();
    assert!(logvar.len() == n && dmu.len() == n && dlogvar.len() == n);
    // batch x latent is small (thousands of elements): one piece.
    f64::from(scale) * kl_piece(mu, logvar, scale, dmu, dlogvar)
}

vectorised! {
    fn reparameterise_piece(mu: &[f32], logvar: &[f32], eps: &[f32], z: &mut [f32]) {
        for (((z, &mu), &lv), &eps) in z.iter_mut().zip(mu).zip(logvar).zip(eps) {
            *z = mu + exp(0.5 * lv) * eps;
        }
    }
}

/// The reparameterised draw z = mu + e^{logvar / 2} eps with eps ~ N(0, I), drawn from `rng`
/// in row-major order (ziggurat, rounded to `f32`) and kept in `eps` for the backward pass.
pub fn reparameterise(
    mu: &[f32],
    logvar: &[f32],
    rng: &mut ChainRng,
    eps: &mut [f32],
    z: &mut [f32],
) {
    let n = mu.len();
    assert!(logvar.len() == n && eps.len() == n && z.len() == n);
    let normal = StandardNormal::new();
    for e in eps.iter_mut() {
        *e = normal.sample(rng) as f32;
    }
    reparameterise_piece(mu, logvar, eps, z);
}

vectorised! {
    fn reparameterise_backward_piece(
        dz: &[f32],
        eps: &[f32],
        logvar: &[f32],
        dmu: &mut [f32],
        dlogvar: &mut [f32],
    ) {
        for i in 0..dz.len() {
            dmu[i] += dz[i];
            dlogvar[i] += dz[i] * (eps[i] * (0.5 * exp(0.5 * logvar[i])));
        }
    }
}

/// Backward of `reparameterise`, **added** to `dmu` and `dlogvar` (which usually hold the KL
/// term's gradient already): dmu += dz, dlogvar += dz eps e^{logvar / 2} / 2.
pub fn reparameterise_backward_add(
    dz: &[f32],
    eps: &[f32],
    logvar: &[f32],
    dmu: &mut [f32],
    dlogvar: &mut [f32],
) {
    let n = dz.len();
    assert!(eps.len() == n && logvar.len() == n && dmu.len() == n && dlogvar.len() == n);
    reparameterise_backward_piece(dz, eps, logvar, dmu, dlogvar);
}

/// Rows per parallel piece of `softmax_cross_entropy` (fixed, so sums do not depend on the
/// number of threads).
const SOFTMAX_ROWS: usize = 64;

fn softmax_row(z: &[f32], label: usize, scale: f32, dz: &mut [f32]) -> f64 {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f64;
    for (d, &v) in dz.iter_mut().zip(z) {
        let e = exp(v - max);
        *d = e;
        sum += f64::from(e);
    }
    let inv = (1.0 / sum) as f32;
    for d in dz.iter_mut() {
        *d *= inv * scale;
    }
    dz[label] -= scale;
    // -ln softmax(z)[label] = ln sum_j e^{z_j - max} - (z_label - max)
    sum.ln() - f64::from(z[label] - max)
}

/// Cross-entropy of integer `labels` under the rows of `logits` (`labels.len()` rows of
/// `classes` logits), **summed** over rows and multiplied by `scale`:
///
/// L = scale * sum_r -ln softmax(z_r)[y_r],  softmax(z)_j = e^{z_j} / sum_k e^{z_k},
///
/// computed with the row maximum subtracted (no overflow). Writes dL/dz_rj = scale
/// (softmax(z_r)_j - [j = y_r]) into `dlogits`. Panics if a label is not below `classes`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    classes: usize,
    labels: &[u32],
    scale: f32,
    dlogits: &mut [f32],
) -> f64 {
    assert!(classes > 0 && logits.len() == labels.len() * classes);
    assert_eq!(dlogits.len(), logits.len());
    assert!(
        labels.iter().all(|&y| (y as usize) < classes),
        "label out of range"
    );
    let piece = SOFTMAX_ROWS * classes;
    let pieces: Vec<f64> = dlogits
        .par_chunks_mut(piece)
        .zip(
            logits
                .par_chunks(piece)
                .zip(labels.par_chunks(SOFTMAX_ROWS)),
        )
        .map(|(dz, (z, y))| {
            dz.chunks_exact_mut(classes)
                .zip(z.chunks_exact(classes))
                .zip(y)
                .map(|((dz, z), &y)| softmax_row(z, y as usize, scale, dz))
                .sum::<f64>()
        })
        .collect();
    f64::from(scale) * pieces.iter().sum::<f64>()
}
