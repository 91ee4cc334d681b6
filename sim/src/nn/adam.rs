//! Adam (Kingma & Ba 2015) in PyTorch's formulation, with L2 or decoupled weight decay.

use super::simd::{PIECE, vectorised};
use crate::SimError;
use rayon::prelude::*;

/// The first and second moments of one parameter slice.
pub type Moments = (Vec<f32>, Vec<f32>);

/// Adam. At step t (from 1), for each parameter p with gradient g:
///
/// - weight decay: `decoupled == false` (PyTorch's `Adam(weight_decay=wd)`, which the paper
///   used with wd = 1e-5): g <- g + wd p, an L2 penalty in the gradient;
///   `decoupled == true` (AdamW, Loshchilov & Hutter): p <- p (1 - lr wd) before the update;
/// - m <- m + (1 - beta1) (g - m),  v <- beta2 v + (1 - beta2) g^2;
/// - p <- p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
///
/// The moments start at 0 and are allocated at the first step; later steps must pass the same
/// parameters in the same order.
#[derive(Debug, Clone)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    t: u64,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Per-step constants of the update.
#[derive(Clone, Copy)]
struct Coefficients {
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    l2: f32,
    shrink: f32,
    step_size: f32,
    bias2_sqrt: f32,
}

vectorised! {
    fn update_piece(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Coefficients) {
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let p_old = p[i] * c.shrink;
            let g = g[i] + c.l2 * p_old;
            m[i] += c.one_minus_beta1 * (g - m[i]);
            v[i] = c.beta2 * v[i] + c.one_minus_beta2 * (g * g);
            let denom = v[i].sqrt() / c.bias2_sqrt + c.eps;
            p[i] = p_old - c.step_size * (m[i] / denom);
        }
    }
}

impl Adam {
    /// PyTorch's defaults (beta1 = 0.9, beta2 = 0.999, eps = 1e-8) with learning rate `lr`
    /// and L2 weight decay `weight_decay` (set `decoupled` for AdamW).
    pub fn new(lr: f32, weight_decay: f32) -> Result<Adam, SimError> {
        let adam = Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled: false,
            t: 0,
            moments: Vec::new(),
        };
        adam.validate()?;
        Ok(adam)
    }

    /// Checks the hyper-parameters (also done by every `step`).
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |why: String| Err(SimError::Invalid { what: "adam", why });
        let unit = 0.0..1.0;
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad(format!(
                "learning rate must be finite and >= 0, got {}",
                self.lr
            ));
        }
        if !(unit.contains(&self.beta1) && unit.contains(&self.beta2)) {
            return bad(format!(
                "betas must lie in [0, 1), got {} and {}",
                self.beta1, self.beta2
            ));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad(format!("eps must be finite and >= 0, got {}", self.eps));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight decay must be finite and >= 0, got {}",
                self.weight_decay
            ));
        }
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The state a checkpoint needs: the step count and the first and second moments of each
    /// parameter slice (empty before the first step).
    pub fn state(&self) -> (u64, &[Moments]) {
        (self.t, &self.moments)
    }

    /// Restores a `state()` (the hyper-parameters are the caller's); `step` checks the
    /// moments' sizes against the parameters.
    pub fn restore(&mut self, steps: u64, moments: Vec<Moments>) {
        self.t = steps;
        self.moments = moments;
    }

    /// One update of every (parameters, gradient) pair.
    pub fn step(&mut self, params: &mut [(&mut [f32], &[f32])]) -> Result<(), SimError> {
        self.validate()?;
        if self.moments.is_empty() {
            self.moments = params
                .iter()
                .map(|(p, _)| (vec![0.0; p.len()], vec![0.0; p.len()]))
                .collect();
        }
        let same = self.moments.len() == params.len()
            && params
                .iter()
                .zip(&self.moments)
                .all(|((p, g), (m, _))| p.len() == m.len() && g.len() == m.len());
        if !same {
            return Err(SimError::Invalid {
                what: "adam step",
                why: "parameters differ from those of the first step".into(),
            });
        }
        self.t += 1;
        let t = self.t.min(i32::MAX as u64) as i32;
        let (b1, b2) = (f64::from(self.beta1), f64::from(self.beta2));
        let (lr, wd) = (self.lr, self.weight_decay);
        let c = Coefficients {
            one_minus_beta1: 1.0 - self.beta1,
            beta2: self.beta2,
            one_minus_beta2: 1.0 - self.beta2,
            eps: self.eps,
            l2: if self.decoupled { 0.0 } else { wd },
            shrink: if self.decoupled { 1.0 - lr * wd } else { 1.0 },
            step_size: (f64::from(lr) / (1.0 - b1.powi(t))) as f32,
            bias2_sqrt: (1.0 - b2.powi(t)).sqrt() as f32,
        };
        for ((p, g), (m, v)) in params.iter_mut().zip(&mut self.moments) {
            p.par_chunks_mut(PIECE)
                .zip(g.par_chunks(PIECE))
                .zip(m.par_chunks_mut(PIECE).zip(v.par_chunks_mut(PIECE)))
                .for_each(|((p, g), (m, v))| update_piece(p, g, m, v, c));
        }
        Ok(())
    }
}
