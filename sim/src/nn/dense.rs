//! The fully connected layer y = x W^T + b.

use super::gemm::{MatRef, gemm};
use crate::SimError;
use crate::rng::ChainRng;

/// Weight initialisation, drawn from a caller's `ChainRng` (weights in row-major order, then
/// biases), so a layer is a deterministic function of its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's `nn.Linear` default (Kaiming uniform with a = sqrt 5): W and b uniform on
    /// [-1/sqrt(inputs), 1/sqrt(inputs)]. The paper's models used it.
    PyTorch,
    /// Kaiming/He uniform for ReLU: W uniform on [-sqrt(6 / inputs), sqrt(6 / inputs)], b = 0.
    KaimingUniform,
    /// Glorot/Xavier uniform: W uniform on [-sqrt(6 / (inputs + outputs)), +...], b = 0.
    GlorotUniform,
}

/// Weights (`len`, in row-major order) then biases drawn by `init` for the given fans.
pub(super) fn initialise(
    len: usize,
    outputs: usize,
    fan_in: usize,
    fan_out: usize,
    init: Init,
    rng: &mut ChainRng,
) -> (Vec<f32>, Vec<f32>) {
    let (fan_in, fan_out) = (fan_in as f64, fan_out as f64);
    let (w_bound, b_bound) = match init {
        Init::PyTorch => (1.0 / fan_in.sqrt(), 1.0 / fan_in.sqrt()),
        Init::KaimingUniform => ((6.0 / fan_in).sqrt(), 0.0),
        Init::GlorotUniform => ((6.0 / (fan_in + fan_out)).sqrt(), 0.0),
    };
    let mut uniform = |bound: f64| ((2.0 * rng.next_f64() - 1.0) * bound) as f32;
    let weight = (0..len).map(|_| uniform(w_bound)).collect();
    let bias = if b_bound > 0.0 {
        (0..outputs).map(|_| uniform(b_bound)).collect()
    } else {
        vec![0.0; outputs]
    };
    (weight, bias)
}

/// Largest weight matrix accepted (elements).
const MAX_WEIGHTS: usize = 1 << 28;

/// A dense layer: y = x W^T + b for x of `batch x inputs`, W of `outputs x inputs` (row-major,
/// PyTorch's layout) and b of `outputs`.
#[derive(Debug, Clone)]
pub struct Dense {
    inputs: usize,
    outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// dL/dW, accumulated by every backward pass until `zero_grad`.
    pub grad_weight: Vec<f32>,
    /// dL/db, accumulated likewise.
    pub grad_bias: Vec<f32>,
    batch: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
}

impl Dense {
    /// A layer initialised by `init` from `rng`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        init: Init,
        rng: &mut ChainRng,
    ) -> Result<Dense, SimError> {
        if inputs == 0 || outputs == 0 || inputs.saturating_mul(outputs) > MAX_WEIGHTS {
            return Err(SimError::Invalid {
                what: "dense layer",
                why: format!(
                    "inputs and outputs must be positive with at most {MAX_WEIGHTS} weights, \
                     got {inputs} x {outputs}"
                ),
            });
        }
        let (weight, bias) = initialise(inputs * outputs, outputs, inputs, outputs, init, rng);
        Ok(Dense {
            inputs,
            outputs,
            weight,
            bias,
            grad_weight: vec![0.0; inputs * outputs],
            grad_bias: vec![0.0; outputs],
            batch: 0,
            x: Vec::new(),
            y: Vec::new(),
            dx: Vec::new(),
        })
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// y = x W^T + b for `batch` rows of x; caches x for the backward pass.
    pub fn forward(&mut self, x: &[f32], batch: usize) -> &[f32] {
        assert_eq!(x.len(), batch * self.inputs, "input is not batch x inputs");
        self.batch = batch;
        self.x.clear();
        self.x.extend_from_slice(x);
        self.y.resize(batch * self.outputs, 0.0);
        for row in self.y.chunks_exact_mut(self.outputs) {
            row.copy_from_slice(&self.bias);
        }
        gemm(
            MatRef::row_major(x, batch, self.inputs),
            MatRef::row_major(&self.weight, self.outputs, self.inputs).t(),
            1.0,
            &mut self.y,
            self.outputs,
        );
        &self.y
    }

    /// Adds dL/dW += dy^T x and dL/db += sum over rows of dy, for dy = dL/dy of the last
    /// forward; computes no dL/dx (for a first layer, whose input is data).
    pub fn backward_params(&mut self, dy: &[f32]) {
        assert_eq!(
            dy.len(),
            self.batch * self.outputs,
            "dy is not batch x outputs"
        );
        gemm(
            MatRef::row_major(dy, self.batch, self.outputs).t(),
            MatRef::row_major(&self.x, self.batch, self.inputs),
            1.0,
            &mut self.grad_weight,
            self.inputs,
        );
        for row in dy.chunks_exact(self.outputs) {
            for (g, &d) in self.grad_bias.iter_mut().zip(row) {
                *g += d;
            }
        }
    }

    /// `backward_params`, then returns dL/dx = dy W.
    pub fn backward(&mut self, dy: &[f32]) -> &[f32] {
        self.backward_params(dy);
        let mut dx = std::mem::take(&mut self.dx);
        dx.resize(self.batch * self.inputs, 0.0);
        self.input_grad(dy, 0.0, &mut dx);
        self.dx = dx;
        &self.dx
    }

    /// `backward_params`, then **adds** dL/dx = dy W to `dx` (for an input shared by several
    /// layers, such as the hidden layer feeding a VAE's mean and log-variance heads).
    pub fn backward_add(&mut self, dy: &[f32], dx: &mut [f32]) {
        self.backward_params(dy);
        assert_eq!(
            dx.len(),
            self.batch * self.inputs,
            "dx is not batch x inputs"
        );
        self.input_grad(dy, 1.0, dx);
    }

    fn input_grad(&self, dy: &[f32], beta: f32, dx: &mut [f32]) {
        gemm(
            MatRef::row_major(dy, self.batch, self.outputs),
            MatRef::row_major(&self.weight, self.outputs, self.inputs),
            beta,
            dx,
            self.inputs,
        );
    }

    pub fn zero_grad(&mut self) {
        self.grad_weight.fill(0.0);
        self.grad_bias.fill(0.0);
    }

    /// The parameters with their gradients, for `Adam::step`.
    pub fn params_and_grads(&mut self) -> [(&mut [f32], &[f32]); 2] {
        [
            (&mut self.weight, &self.grad_weight),
            (&mut self.bias, &self.grad_bias),
        ]
    }
}
