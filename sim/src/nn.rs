//! A small neural-network layer set shared by the learned models (the VAE and the language
//! models): dense layers, 2-D convolutions and transposed convolutions (NCHW images, im2col +
//! GEMM), layer normalisation, ReLU, GELU and sigmoid, the VAE losses (Bernoulli cross-entropy
//! on logits, the Gaussian KL divergence and the reparameterisation) and Adam. Forward and
//! backward are written by hand; every backward is checked against finite differences of an
//! independent `f64` reference (`nn/tests.rs`, `nn/conv/tests.rs`).
//!
//! Conventions:
//! - Tensors are `f32`, row-major `batch x features` slices; a weight matrix is
//!   `outputs x inputs` (PyTorch's layout), so a dense layer computes `y = x W^T + b`.
//! - A layer's `forward` caches what its `backward` needs and returns its output from a buffer
//!   it owns (reused across steps: no allocation once the batch size is fixed).
//! - Parameter gradients **accumulate** into the layer's `grad_*` buffers (call `zero_grad`
//!   between steps); gradients with respect to inputs are overwritten, except in functions
//!   whose name ends in `_add`.
//! - Matrix products go through `matrixmultiply::sgemm` (packed, SIMD microkernels chosen at
//!   run time); element-wise kernels are compiled twice, for AVX2/FMA (selected at run time)
//!   and portably, from the same source without fused multiply-adds, so both give the same
//!   bits.
//! - Parallelism (rayon, in the caller's pool): work is cut into pieces whose boundaries
//!   depend only on the shapes, never on the number of threads, each piece is computed by the
//!   same code whichever thread runs it, and sums over pieces are taken in piece order. Results
//!   are therefore bit-identical for any number of threads (tested). They may differ between
//!   CPUs, because `sgemm` picks its microkernel (FMA or not) by CPU feature.

mod activation;
mod adam;
mod attention;
mod conv;
mod dense;
mod gemm;
mod loss;
mod norm;
mod simd;

pub use activation::{
    Gelu, Relu, Sigmoid, gelu_backward, gelu_forward, gelu_row, relu_backward, relu_forward,
    sigmoid_backward, sigmoid_forward,
};
pub use adam::{Adam, Moments};
pub use attention::{CausalAttention, attend_row};
pub use conv::{Conv2d, ConvTranspose2d};
pub use dense::{Dense, Init};
pub use gemm::{MatRef, few_rows_dense, gemm};
pub use loss::{
    bce_with_logits, gaussian_kl, reparameterise, reparameterise_backward_add,
    softmax_cross_entropy,
};
pub use norm::LayerNorm;

#[cfg(test)]
mod tests;
