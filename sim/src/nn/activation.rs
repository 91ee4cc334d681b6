//! ReLU and the logistic sigmoid, element-wise.

use super::simd::{PIECE, sigmoid_and_exp_neg_abs, vectorised};
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
