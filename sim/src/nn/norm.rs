//! Layer normalisation over the features of each row.

use super::simd::{PIECE, vectorised};
use crate::SimError;
use rayon::prelude::*;

/// Added to the variance (PyTorch's `LayerNorm` default).
const EPS: f64 = 1e-5;

/// Lanes of the `f64` row sums: element j goes to lane j % LANES, lanes are then added in
/// order (a fixed order that the compiler can vectorise).
const LANES: usize = 8;

/// sum_j f(a_j, b_j) in `f64`, over LANES interleaved lanes.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    let b = &b[..a.len()];
    let mut acc = [0.0f64; LANES];
    let whole = a.len() - a.len() % LANES;
    for (a, b) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += f(a[l], b[l]);
        }
    }
    for (l, (&a, &b)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
        acc[l] += f(a, b);
    }
    acc.iter().sum()
}

/// Writes x-hat = (x - mean) / sqrt(var + eps) of one row into `xhat` and returns 1/std.
#[inline(always)]
fn normalise(x: &[f32], xhat: &mut [f32]) -> f32 {
    let n = x.len() as f64;
    let mean = lane_sum(x, x, |v, _| f64::from(v)) / n;
    // Two passes: the squared deviations from the mean, not E[x^2] - mean^2 (cancellation).
    let var = lane_sum(x, x, |v, _| {
        let d = f64::from(v) - mean;
        d * d
    }) / n;
    // The mean as hi + lo in f32: x - hi is exact when x is near the mean, so x-hat keeps
    // its relative precision even when std is small next to |x|.
    let hi = mean as f32;
    let lo = (mean - f64::from(hi)) as f32;
    let rstd = (1.0 / (var + EPS).sqrt()) as f32;
    for (h, &v) in xhat.iter_mut().zip(x) {
        *h = ((v - hi) - lo) * rstd;
    }
    rstd
}

/// y = gamma * x-hat + beta, in place.
#[inline(always)]
fn affine(gamma: &[f32], beta: &[f32], y: &mut [f32]) {
    for ((y, &g), &b) in y.iter_mut().zip(gamma).zip(beta) {
        *y = g * *y + b;
    }
}

vectorised! {
    fn forward_piece(
        x: &[f32], gamma: &[f32], beta: &[f32], xhat: &mut [f32], rstd: &mut [f32], y: &mut [f32],
    ) {
        let w = gamma.len();
        for (((x, xhat), rstd), y) in x
            .chunks_exact(w)
            .zip(xhat.chunks_exact_mut(w))
            .zip(rstd.iter_mut())
            .zip(y.chunks_exact_mut(w))
        {
            *rstd = normalise(x, xhat);
            y.copy_from_slice(xhat);
            affine(gamma, beta, y);
        }
    }
}

vectorised! {
    fn normalise_row_kernel(x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32]) {
        normalise(x, y);
        affine(gamma, beta, y);
    }
}

vectorised! {
    /// dx of the piece's rows, and the piece's sums over rows of dy x-hat (into `part[..w]`)
    /// and of dy (into `part[w..]`).
    fn backward_piece(
        dy: &[f32], xhat: &[f32], rstd: &[f32], gamma: &[f32], dx: &mut [f32], part: &mut [f32],
    ) {
        let w = gamma.len();
        let (pg, pb) = part.split_at_mut(w);
        pg.fill(0.0);
        pb.fill(0.0);
        for (((dy, xhat), &rstd), dx) in dy
            .chunks_exact(w)
            .zip(xhat.chunks_exact(w))
            .zip(rstd)
            .zip(dx.chunks_exact_mut(w))
        {
            for ((((pg, pb), &d), &h), (dx, &g)) in
                pg.iter_mut().zip(pb.iter_mut()).zip(dy).zip(xhat).zip(dx.iter_mut().zip(gamma))
            {
                *pg += d * h;
                *pb += d;
                *dx = d * g;
            }
            // dx holds g = dy gamma here.
            let n = w as f64;
            let mean_g = (lane_sum(dx, dx, |g, _| f64::from(g)) / n) as f32;
            let mean_gh = (lane_sum(dx, xhat, |g, h| f64::from(g) * f64::from(h)) / n) as f32;
            for (dx, &h) in dx.iter_mut().zip(xhat) {
                *dx = rstd * ((*dx - mean_g) - h * mean_gh);
            }
        }
    }
}

/// Layer normalisation (Ba et al. 2016; PyTorch's `LayerNorm(width)`, eps = 1e-5) of each
/// row of `rows x width`:
///
/// y = gamma * (x - mean) / sqrt(var + eps) + beta,
///
/// with the mean and the biased variance (divided by `width`) over the row, and gamma, beta of
/// `width` (starting at 1 and 0). The row statistics are accumulated in `f64` (two passes:
/// the mean, then the mean squared deviation from it); x-hat = (x - mean) / std and y are
/// computed in `f32`, from 1/std rounded to `f32` and the mean as a sum of two `f32`s.
/// Backward, with g = dy * gamma and means over the row (accumulated in `f64`):
///
/// dx = (1/std) (g - mean(g) - x-hat mean(g x-hat)),
/// dgamma += sum over rows of dy x-hat,  dbeta += sum over rows of dy.
///
/// Rows are cut into pieces of a fixed number of rows (set by the width); the parameter
/// gradients are summed over rows within each piece, then over pieces in order, so the result
/// does not depend on the number of threads.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    width: usize,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    /// dL/dgamma, accumulated by every backward pass until `zero_grad`.
    pub grad_gamma: Vec<f32>,
    /// dL/dbeta, accumulated likewise.
    pub grad_beta: Vec<f32>,
    rows: usize,
    xhat: Vec<f32>,
    rstd: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    /// Per-piece sums of dy x-hat and dy (2 width each).
    partial: Vec<f32>,
}

impl LayerNorm {
    /// gamma = 1, beta = 0.
    pub fn new(width: usize) -> Result<LayerNorm, SimError> {
        if width == 0 {
            return Err(SimError::Invalid {
                what: "layer norm",
                why: "width must be positive".into(),
            });
        }
        Ok(LayerNorm {
            width,
            gamma: vec![1.0; width],
            beta: vec![0.0; width],
            grad_gamma: vec![0.0; width],
            grad_beta: vec![0.0; width],
            rows: 0,
            xhat: Vec::new(),
            rstd: Vec::new(),
            y: Vec::new(),
            dx: Vec::new(),
            partial: Vec::new(),
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows per parallel piece: about `PIECE` elements, fixed by the width alone.
    fn piece_rows(&self) -> usize {
        (PIECE / self.width).max(1)
    }

    /// y for `rows` rows of x; caches x-hat and 1/std for the backward pass.
    pub fn forward(&mut self, x: &[f32], rows: usize) -> &[f32] {
        let w = self.width;
        assert_eq!(x.len(), rows * w, "input is not rows x width");
        self.rows = rows;
        self.xhat.resize(rows * w, 0.0);
        self.rstd.resize(rows, 0.0);
        self.y.resize(rows * w, 0.0);
        let pr = self.piece_rows();
        let (gamma, beta) = (&self.gamma, &self.beta);
        self.y
            .par_chunks_mut(pr * w)
            .zip(self.xhat.par_chunks_mut(pr * w))
            .zip(self.rstd.par_chunks_mut(pr))
            .zip(x.par_chunks(pr * w))
            .for_each(|(((y, xhat), rstd), x)| forward_piece(x, gamma, beta, xhat, rstd, y));
        &self.y
    }

    /// dL/dx from dy = dL/dy of the last forward; adds to `grad_gamma` and `grad_beta`.
    pub fn backward(&mut self, dy: &[f32]) -> &[f32] {
        let w = self.width;
        assert_eq!(dy.len(), self.rows * w, "dy is not rows x width");
        let pr = self.piece_rows();
        self.dx.resize(self.rows * w, 0.0);
        self.partial.resize(self.rows.div_ceil(pr) * 2 * w, 0.0);
        let gamma = &self.gamma;
        self.dx
            .par_chunks_mut(pr * w)
            .zip(self.partial.par_chunks_mut(2 * w))
            .zip(dy.par_chunks(pr * w))
            .zip(self.xhat.par_chunks(pr * w).zip(self.rstd.par_chunks(pr)))
            .for_each(|(((dx, part), dy), (xhat, rstd))| {
                backward_piece(dy, xhat, rstd, gamma, dx, part)
            });
        // In piece order, so the sums do not depend on the thread count.
        for part in self.partial.chunks_exact(2 * w) {
            let (pg, pb) = part.split_at(w);
            for (g, &p) in self.grad_gamma.iter_mut().zip(pg) {
                *g += p;
            }
            for (g, &p) in self.grad_beta.iter_mut().zip(pb) {
                *g += p;
            }
        }
        &self.dx
    }

    /// y of one row, `width` long, without touching the cache (for inference one row at a
    /// time): the same arithmetic as `forward`, so the same bits.
    pub fn normalise_row(&self, x: &[f32], y: &mut [f32]) {
        assert!(
            x.len() == self.width && y.len() == self.width,
            "row is not width long"
        );
        normalise_row_kernel(x, &self.gamma, &self.beta, y);
    }

    pub fn zero_grad(&mut self) {
        self.grad_gamma.fill(0.0);
        self.grad_beta.fill(0.0);
    }

    /// The parameters with their gradients, for `Adam::step`: gamma, then beta.
    pub fn params_and_grads(&mut self) -> [(&mut [f32], &[f32]); 2] {
        [
            (&mut self.gamma, &self.grad_gamma),
            (&mut self.beta, &self.grad_beta),
        ]
    }
}
