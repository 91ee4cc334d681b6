//! ReLU, GELU and the logistic sigmoid, element-wise.

use super::simd::{PIECE, exp, sigmoid_and_exp_neg_abs, vectorised};
use rayon::prelude::*;

vectorised! {
    fn relu_piece(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            // NaN propagates (x < 0 is false).
            *y = if x < 0.0 { 0.0 } else { x };
        }
    }
}

vectorised! {
    fn relu_backward_piece(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
            *dx = if y > 0.0 { dy } else { 0.0 };
        }
    }
}

vectorised! {
    fn sigmoid_piece(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = sigmoid_and_exp_neg_abs(x).0;
        }
    }
}

vectorised! {
    fn sigmoid_backward_piece(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
            *dx = dy * (y * (1.0 - y));
        }
    }
}

/// 2 sqrt(2 / pi): GELU's 1 + tanh(u) is 2 sigmoid(2u).
const GELU_K: f32 = 1.595_769;
/// The cubic coefficient of GPT-2's GELU approximation.
const GELU_C: f32 = 0.044_715;
/// Beyond |x| = 100 (where x^3 would overflow further out) sigmoid(z) is exactly 0 or 1 in
/// `f32` anyway, so z and dz/dx are computed from x clamped to this.
const GELU_CLAMP: f32 = 100.0;

/// sigmoid(z), sigmoid'(z) = sigmoid(z)(1 - sigmoid(z)) and dz/dx for z = 2u(x), without
/// overflow and without the cancellation of 1 - sigmoid(z) near 1. e^{-|z|} is taken as 0 for
/// |z| > 87 (below `f32`'s normal range) so that the tails are exactly x and 0.
#[inline(always)]
fn gelu_parts(x: f32) -> (f32, f32, f32) {
    let x = x.clamp(-GELU_CLAMP, GELU_CLAMP);
    let x2 = x * x;
    let z = GELU_K * (x + GELU_C * (x2 * x));
    let dz = GELU_K * (1.0 + (3.0 * GELU_C) * x2);
    let a = z.abs();
    let e = if a > 87.0 { 0.0 } else { exp(-a) };
    let r = 1.0 / (1.0 + e);
    let s = if z >= 0.0 { r } else { e * r };
    (s, e * (r * r), dz)
}

/// GELU of one element (the scalar code of the kernels).
#[inline(always)]
pub(super) fn gelu_one(x: f32) -> f32 {
    x * gelu_parts(x).0
}

/// d gelu / dx at x.
#[inline(always)]
pub(super) fn gelu_grad_one(x: f32) -> f32 {
    let (s, ds, dz) = gelu_parts(x);
    s + x * (ds * dz)
}

vectorised! {
    fn gelu_piece(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = gelu_one(x);
        }
    }
}

vectorised! {
    fn gelu_backward_piece(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
            *dx = dy * gelu_grad_one(x);
        }
    }
}

/// y = max(x, 0) element-wise (NaN stays NaN).
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    y.par_chunks_mut(PIECE)
        .zip(x.par_chunks(PIECE))
        .for_each(|(y, x)| relu_piece(x, y));
}

/// dx = dy * [y > 0], from ReLU's output y (the subgradient at 0 is taken as 0).
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(y.len() == dy.len() && y.len() == dx.len());
    dx.par_chunks_mut(PIECE)
        .zip(dy.par_chunks(PIECE).zip(y.par_chunks(PIECE)))
        .for_each(|(dx, (dy, y))| relu_backward_piece(y, dy, dx));
}

/// y = 1 / (1 + e^-x) element-wise, as e^x / (1 + e^x) for x < 0 so that nothing overflows.
pub fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    y.par_chunks_mut(PIECE)
        .zip(x.par_chunks(PIECE))
        .for_each(|(y, x)| sigmoid_piece(x, y));
}

/// dx = dy * y (1 - y), from the sigmoid's output y.
pub fn sigmoid_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(y.len() == dy.len() && y.len() == dx.len());
    dx.par_chunks_mut(PIECE)
        .zip(dy.par_chunks(PIECE).zip(y.par_chunks(PIECE)))
        .for_each(|(dx, (dy, y))| sigmoid_backward_piece(y, dy, dx));
}

/// GELU, tanh approximation (GPT-2's; PyTorch's `gelu(approximate="tanh")`, JAX's
/// `gelu(approximate=True)`), element-wise:
///
/// gelu(x) = x/2 (1 + tanh(u)) = x sigmoid(2u),  u = sqrt(2/pi) (x + 0.044715 x^3),
///
/// through the overflow-free sigmoid, so large |x| give exactly x or (-)0, never NaN.
pub fn gelu_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    y.par_chunks_mut(PIECE)
        .zip(x.par_chunks(PIECE))
        .for_each(|(y, x)| gelu_piece(x, y));
}

/// `gelu_forward` without rayon, for short slices such as one row while decoding: the same
/// arithmetic, so the same bits.
pub fn gelu_row(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    gelu_piece(x, y);
}

/// dx = dy gelu'(x), from GELU's **input** x, with s = sigmoid(2u):
/// gelu'(x) = s + x s (1 - s) 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2).
pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(x.len() == dy.len() && x.len() == dx.len());
    dx.par_chunks_mut(PIECE)
        .zip(dy.par_chunks(PIECE).zip(x.par_chunks(PIECE)))
        .for_each(|(dx, (dy, x))| gelu_backward_piece(x, dy, dx));
}

/// ReLU as a layer: caches its output for the backward pass.
#[derive(Debug, Clone, Default)]
pub struct Relu {
    y: Vec<f32>,
    dx: Vec<f32>,
}

impl Relu {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn forward(&mut self, x: &[f32]) -> &[f32] {
        self.y.resize(x.len(), 0.0);
        relu_forward(x, &mut self.y);
        &self.y
    }

    /// dL/dx from dL/dy of the last forward.
    pub fn backward(&mut self, dy: &[f32]) -> &[f32] {
        self.dx.resize(dy.len(), 0.0);
        relu_backward(&self.y, dy, &mut self.dx);
        &self.dx
    }
}

/// The sigmoid as a layer: caches its output for the backward pass. (A VAE decoder whose loss
/// is `bce_with_logits` needs no sigmoid layer: the loss takes the logits.)
#[derive(Debug, Clone, Default)]
pub struct Sigmoid {
    y: Vec<f32>,
    dx: Vec<f32>,
}

impl Sigmoid {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn forward(&mut self, x: &[f32]) -> &[f32] {
        self.y.resize(x.len(), 0.0);
        sigmoid_forward(x, &mut self.y);
        &self.y
    }

    /// dL/dx from dL/dy of the last forward.
    pub fn backward(&mut self, dy: &[f32]) -> &[f32] {
        self.dx.resize(dy.len(), 0.0);
        sigmoid_backward(&self.y, dy, &mut self.dx);
        &self.dx
    }
}

/// GELU (`gelu_forward`) as a layer: caches its input for the backward pass.
#[derive(Debug, Clone, Default)]
pub struct Gelu {
    x: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
}

impl Gelu {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn forward(&mut self, x: &[f32]) -> &[f32] {
        self.x.clear();
        self.x.extend_from_slice(x);
        self.y.resize(x.len(), 0.0);
        gelu_forward(x, &mut self.y);
        &self.y
    }

    /// dL/dx from dL/dy of the last forward.
    pub fn backward(&mut self, dy: &[f32]) -> &[f32] {
        self.dx.resize(dy.len(), 0.0);
        gelu_backward(&self.x, dy, &mut self.dx);
        &self.dx
    }
}
