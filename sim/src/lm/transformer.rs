//! A small decoder-only transformer in GPT-2's pre-norm layout, trained by hand-written
//! backward passes on the `nn` layer set, with KV-cached decoding (greedy, temperature,
//! top-k / top-p sampling and beam search with a repetition penalty).
//!
//! # The model
//!
//! Tokens 0..V plus a begin-of-sequence token BOS = V. For inputs t_0..t_{T-1} (T <= context):
//!
//! - x = E[t_i] + P[i] (token embedding E: (V + 1) x d, learned positions P: context x d);
//! - per layer: x <- x + W_o Attn(LN_1(x)) + b_o, then x <- x + W_2 GELU(W_1 LN_2(x) + b_1) + b_2,
//!   with causal multi-head attention on q, k, v = W_qkv LN_1(x) + b_qkv ([`CausalAttention`]);
//! - logits = LN_f(x) E[0..V]^T (the output layer is the token embedding, tied).
//!
//! A sequence s_0..s_{n-1} is scored from its start: inputs BOS, s_0..s_{n-2}, targets
//! s_0..s_{n-1}; the loss is the mean cross-entropy over targets. Parameters:
//! (V + 1) d + context d + layers (12 d^2 + 13 d) + 2 d.
//!
//! Initialisation as GPT-2: weights and embeddings N(0, 0.02^2), the two projections into the
//! residual stream (W_o, W_2) N(0, (0.02 / sqrt(2 layers))^2), biases 0, norms 1 and 0.
//!
//! # Training
//!
//! AdamW (betas 0.9, 0.95; decoupled weight decay on the matrices and embeddings only), the
//! gradient's global norm clipped to 1, and a learning rate warmed up linearly over the first
//! tenth of the steps (at most 100) and then decayed by a cosine to a tenth of its peak.

use crate::SimError;
use crate::nn::{
    Adam, CausalAttention, Dense, Gelu, Init, LayerNorm, MatRef, Moments, attend_row,
    few_rows_dense, gelu_row, gemm, softmax_cross_entropy,
};
use crate::normal::StandardNormal;
use crate::rng::{ChainRng, shuffle};

/// Largest width, context and vocabulary accepted (a CPU model).
pub const MAX_WIDTH: usize = 4096;
pub const MAX_CONTEXT: usize = 4096;
pub const MAX_LAYERS: usize = 64;

/// The shape of a transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Tokens (BOS is one more).
    pub vocab: usize,
    /// Positions: the longest input.
    pub context: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
}

impl Config {
    /// Checks the shape; the error names the first bad setting.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &'static str, why: String| Err(SimError::Invalid { what, why });
        if !(2..=crate::lm::bpe::Bpe::MAX_VOCAB).contains(&self.vocab) {
            return bad("vocab", format!("must be at least 2, got {}", self.vocab));
        }
        if !(1..=MAX_CONTEXT).contains(&self.context) {
            return bad(
                "context",
                format!("must be in 1..={MAX_CONTEXT}, got {}", self.context),
            );
        }
        if !(1..=MAX_WIDTH).contains(&self.width) {
            return bad(
                "width",
                format!("must be in 1..={MAX_WIDTH}, got {}", self.width),
            );
        }
        if !(1..=MAX_LAYERS).contains(&self.layers) {
            return bad(
                "layers",
                format!("must be in 1..={MAX_LAYERS}, got {}", self.layers),
            );
        }
        if self.heads == 0 || !self.width.is_multiple_of(self.heads) {
            return bad(
                "heads",
                format!("must divide the width {}, got {}", self.width, self.heads),
            );
        }
        Ok(())
    }

    /// (V + 1) d + context d + layers (12 d^2 + 13 d) + 2 d.
    pub fn parameters(&self) -> usize {
        let d = self.width;
        (self.vocab + 1) * d + self.context * d + self.layers * (12 * d * d + 13 * d) + 2 * d
    }

    /// The begin-of-sequence token.
    pub fn bos(&self) -> u32 {
        self.vocab as u32
    }
}

/// One pre-norm block.
#[derive(Debug, Clone)]
struct Block {
    ln1: LayerNorm,
    qkv: Dense,
    attn: CausalAttention,
    proj: Dense,
    ln2: LayerNorm,
    fc: Dense,
    gelu: Gelu,
    out: Dense,
}

/// The model, with the caches of its last training forward pass.
#[derive(Debug, Clone)]
pub struct Transformer {
    config: Config,
    /// E, (V + 1) x d.
    pub token: Vec<f32>,
    /// P, context x d.
    pub position: Vec<f32>,
    pub grad_token: Vec<f32>,
    pub grad_position: Vec<f32>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    // Caches of the last forward pass.
    inputs: Vec<u32>,
    batch: usize,
    seq: usize,
    x: Vec<f32>,
    normed: Vec<f32>,
    logits: Vec<f32>,
}

fn normal_fill(v: &mut [f32], std: f64, rng: &mut ChainRng) {
    let normal = StandardNormal::new();
    for x in v {
        *x = (std * normal.sample(rng)) as f32;
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

impl Transformer {
    /// A model initialised as GPT-2 from `rng`.
    pub fn new(config: Config, rng: &mut ChainRng) -> Result<Transformer, SimError> {
        config.validate()?;
        let d = config.width;
        let std = 0.02;
        let residual_std = std / (2.0 * config.layers as f64).sqrt();
        let mut dense = |inputs: usize, outputs: usize, std: f64| -> Result<Dense, SimError> {
            let mut layer = Dense::new(inputs, outputs, Init::GlorotUniform, rng)?;
            normal_fill(&mut layer.weight, std, rng);
            layer.bias.fill(0.0);
            Ok(layer)
        };
        let mut blocks = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            blocks.push(Block {
                ln1: LayerNorm::new(d)?,
                qkv: dense(d, 3 * d, std)?,
                attn: CausalAttention::new(d, config.heads),
                proj: dense(d, d, residual_std)?,
                ln2: LayerNorm::new(d)?,
                fc: dense(d, 4 * d, std)?,
                gelu: Gelu::new(),
                out: dense(4 * d, d, residual_std)?,
            });
        }
        let mut token = vec![0.0; (config.vocab + 1) * d];
        let mut position = vec![0.0; config.context * d];
        normal_fill(&mut token, std, rng);
        normal_fill(&mut position, std, rng);
        Ok(Transformer {
            config,
            grad_token: vec![0.0; token.len()],
            grad_position: vec![0.0; position.len()],
            token,
            position,
            blocks,
            ln_f: LayerNorm::new(d)?,
            inputs: Vec::new(),
            batch: 0,
            seq: 0,
            x: Vec::new(),
            normed: Vec::new(),
            logits: Vec::new(),
        })
    }

    pub fn config(&self) -> Config {
        self.config
    }

    /// Counted from the parameter slices (equal to [`Config::parameters`]; tested).
    pub fn parameters(&mut self) -> usize {
        let (decay, plain) = self.parameter_groups();
        decay.iter().chain(&plain).map(|(p, _)| p.len()).sum()
    }

    /// Forward pass on `batch` rows of `seq` input tokens; leaves the logits
    /// (`batch * seq x V`) in `self.logits`.
    fn forward(&mut self, inputs: &[u32], batch: usize, seq: usize) {
        let (d, vocab) = (self.config.width, self.config.vocab);
        assert!(
            seq >= 1 && seq <= self.config.context,
            "sequence longer than the context"
        );
        assert_eq!(inputs.len(), batch * seq, "inputs are not batch x seq");
        assert!(
            inputs.iter().all(|&t| t as usize <= vocab),
            "token out of range"
        );
        let rows = batch * seq;
        self.inputs.clear();
        self.inputs.extend_from_slice(inputs);
        self.batch = batch;
        self.seq = seq;
        self.x.resize(rows * d, 0.0);
        for (r, x) in self.x.chunks_exact_mut(d).enumerate() {
            let t = inputs[r] as usize;
            let p = r % seq;
            for ((x, &e), &q) in x
                .iter_mut()
                .zip(&self.token[t * d..(t + 1) * d])
                .zip(&self.position[p * d..(p + 1) * d])
            {
                *x = e + q;
            }
        }
        for block in &mut self.blocks {
            let a = block.ln1.forward(&self.x, rows);
            let qkv = block.qkv.forward(a, rows);
            let o = block.attn.forward(qkv, batch, seq);
            add_into(&mut self.x, block.proj.forward(o, rows));
            let b = block.ln2.forward(&self.x, rows);
            let f = block.fc.forward(b, rows);
            let g = block.gelu.forward(f);
            add_into(&mut self.x, block.out.forward(g, rows));
        }
        self.normed.clear();
        self.normed
            .extend_from_slice(self.ln_f.forward(&self.x, rows));
        self.logits.resize(rows * vocab, 0.0);
        gemm(
            MatRef::row_major(&self.normed, rows, d),
            MatRef::row_major(&self.token[..vocab * d], vocab, d).t(),
            0.0,
            &mut self.logits,
            vocab,
        );
    }

    /// Backward pass of the last forward from dL/dlogits: accumulates every gradient.
    fn backward(&mut self, dlogits: &[f32]) {
        let (d, vocab) = (self.config.width, self.config.vocab);
        let rows = self.batch * self.seq;
        // The tied output layer: dE[0..V] += dlogits^T y, dy = dlogits E[0..V].
        gemm(
            MatRef::row_major(dlogits, rows, vocab).t(),
            MatRef::row_major(&self.normed, rows, d),
            1.0,
            &mut self.grad_token[..vocab * d],
            d,
        );
        let mut dy = vec![0.0; rows * d];
        gemm(
            MatRef::row_major(dlogits, rows, vocab),
            MatRef::row_major(&self.token[..vocab * d], vocab, d),
            0.0,
            &mut dy,
            d,
        );
        let mut dx = self.ln_f.backward(&dy).to_vec();
        for block in self.blocks.iter_mut().rev() {
            let dg = block.out.backward(&dx);
            let df = block.gelu.backward(dg);
            let db = block.fc.backward(df);
            add_into(&mut dx, block.ln2.backward(db));
            let d_o = block.proj.backward(&dx);
            let dqkv = block.attn.backward(d_o);
            let da = block.qkv.backward(dqkv);
            add_into(&mut dx, block.ln1.backward(da));
        }
        // Embedding rows in row order (a fixed order of additions).
        for (r, g) in dx.chunks_exact(d).enumerate() {
            let t = self.inputs[r] as usize;
            let p = r % self.seq;
            add_into(&mut self.grad_token[t * d..(t + 1) * d], g);
            add_into(&mut self.grad_position[p * d..(p + 1) * d], g);
        }
    }

    /// Inputs (BOS, s_0..s_{n-2}) and targets (s_0..s_{n-1}) of equal-length sequences.
    fn inputs_and_targets(&self, sequences: &[&[u32]]) -> (Vec<u32>, Vec<u32>, usize) {
        let n = sequences[0].len();
        assert!(
            sequences.iter().all(|s| s.len() == n),
            "sequences differ in length"
        );
        let mut inputs = Vec::with_capacity(sequences.len() * n);
        let mut targets = Vec::with_capacity(sequences.len() * n);
        for s in sequences {
            assert!(s.iter().all(|&t| (t as usize) < self.config.vocab));
            inputs.push(self.config.bos());
            inputs.extend_from_slice(&s[..n - 1]);
            targets.extend_from_slice(s);
        }
        (inputs, targets, n)
    }

    /// The mean cross-entropy (nats per token) of `sequences` (equal lengths, each scored from
    /// BOS), **adding** its gradient to every parameter's gradient.
    pub fn loss_and_gradients(&mut self, sequences: &[&[u32]]) -> f64 {
        let (inputs, targets, n) = self.inputs_and_targets(sequences);
        self.forward(&inputs, sequences.len(), n);
        let logits = std::mem::take(&mut self.logits);
        let mut dlogits = vec![0.0; logits.len()];
        let loss = softmax_cross_entropy(
            &logits,
            self.config.vocab,
            &targets,
            1.0 / targets.len() as f32,
            &mut dlogits,
        );
        self.logits = logits;
        self.backward(&dlogits);
        loss
    }

    /// ln p(sequence) of each sequence (equal lengths, each scored from BOS), in batches.
    pub fn log_probs(&mut self, sequences: &[&[u32]]) -> Vec<f64> {
        const BATCH: usize = 32;
        let vocab = self.config.vocab;
        let mut out = Vec::with_capacity(sequences.len());
        for chunk in sequences.chunks(BATCH) {
            let (inputs, targets, n) = self.inputs_and_targets(chunk);
            self.forward(&inputs, chunk.len(), n);
            for s in 0..chunk.len() {
                let lp: f64 = (0..n)
                    .map(|i| {
                        let r = s * n + i;
                        log_softmax_at(&self.logits[r * vocab..(r + 1) * vocab], targets[r])
                    })
                    .sum();
                out.push(lp);
            }
        }
        out
    }

    pub fn zero_grad(&mut self) {
        self.grad_token.fill(0.0);
        self.grad_position.fill(0.0);
        for b in &mut self.blocks {
            for l in [&mut b.qkv, &mut b.proj, &mut b.fc, &mut b.out] {
                l.zero_grad();
            }
            b.ln1.zero_grad();
            b.ln2.zero_grad();
        }
        self.ln_f.zero_grad();
    }

    /// (parameters, gradient) pairs: those with weight decay (matrices, embeddings) and the
    /// others (biases, norms), in a fixed order.
    #[allow(clippy::type_complexity)]
    pub fn parameter_groups(&mut self) -> (Vec<(&mut [f32], &[f32])>, Vec<(&mut [f32], &[f32])>) {
        let mut decay: Vec<(&mut [f32], &[f32])> = vec![
            (&mut self.token, &self.grad_token),
            (&mut self.position, &self.grad_position),
        ];
        let mut plain: Vec<(&mut [f32], &[f32])> = Vec::new();
        for b in &mut self.blocks {
            for l in [&mut b.qkv, &mut b.proj, &mut b.fc, &mut b.out] {
                let [w, bias] = l.params_and_grads();
                decay.push(w);
                plain.push(bias);
            }
            plain.extend(b.ln1.params_and_grads());
            plain.extend(b.ln2.params_and_grads());
        }
        plain.extend(self.ln_f.params_and_grads());
        (decay, plain)
    }

    /// Every parameter, flattened in [`Transformer::parameter_groups`] order (for tests and
    /// checkpoints).
    pub fn flat_parameters(&mut self) -> Vec<f32> {
        let (decay, plain) = self.parameter_groups();
        decay
            .iter()
            .chain(&plain)
            .flat_map(|(p, _)| p.iter().copied())
            .collect()
    }

    /// Every gradient, flattened in the same order.
    pub fn flat_gradients(&mut self) -> Vec<f32> {
        let (decay, plain) = self.parameter_groups();
        decay
            .iter()
            .chain(&plain)
            .flat_map(|(_, g)| g.iter().copied())
            .collect()
    }

    /// Sets every parameter from [`Transformer::flat_parameters`]' layout.
    pub fn set_flat_parameters(&mut self, values: &[f32]) -> Result<(), SimError> {
        let (decay, plain) = self.parameter_groups();
        let total: usize = decay.iter().chain(&plain).map(|(p, _)| p.len()).sum();
        if total != values.len() {
            return Err(SimError::Invalid {
                what: "transformer parameters",
                why: format!("expected {total} values, got {}", values.len()),
            });
        }
        let mut at = 0;
        for (p, _) in decay.into_iter().chain(plain) {
            p.copy_from_slice(&values[at..at + p.len()]);
            at += p.len();
        }
        Ok(())
    }
}

/// ln softmax(z)[y], in f64 from the row maximum.
fn log_softmax_at(z: &[f32], y: u32) -> f64 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = z.iter().map(|&v| f64::from(v - max).exp()).sum();
    f64::from(z[y as usize] - max) - sum.ln()
}

/// Hyper-parameters of one training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Training {
    pub epochs: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f32,
    pub weight_decay: f32,
    /// Largest global gradient norm (the gradient is scaled down to it).
    pub clip: f64,
}

impl Training {
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &'static str, why: String| Err(SimError::Invalid { what, why });
        if !(1..=10_000).contains(&self.epochs) {
            return bad(
                "epochs",
                format!("must be in 1..=10000, got {}", self.epochs),
            );
        }
        if !(1..=65_536).contains(&self.batch) {
            return bad("batch", format!("must be in 1..=65536, got {}", self.batch));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return bad("lr", format!("must be in (0, 1], got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && (0.0..=1.0).contains(&self.weight_decay)) {
            return bad(
                "weight decay",
                format!("must be in [0, 1], got {}", self.weight_decay),
            );
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return bad("clip", format!("must be positive, got {}", self.clip));
        }
        Ok(())
    }

    /// Warm-up steps for `total` steps: a tenth, at most 100, at least 1.
    pub fn warmup(total: usize) -> usize {
        (total / 10).clamp(1, 100)
    }

    /// The learning rate at step `t` (from 0) of `total`: linear warm-up to `lr`, then a
    /// cosine from `lr` to `lr / 10` at the last step.
    pub fn rate(&self, t: usize, total: usize) -> f32 {
        let warmup = Self::warmup(total);
        let lr = f64::from(self.lr);
        let rate = if t < warmup {
            lr * (t + 1) as f64 / warmup as f64
        } else {
            let span = (total - warmup).max(1) as f64;
            let progress = ((t - warmup) as f64 / span).min(1.0);
            lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
        };
        rate as f32
    }
}

/// What training reports after each step.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
}

/// AdamW with a schedule and gradient clipping over a model's two parameter groups.
#[derive(Debug, Clone)]
pub struct Optimizer {
    decay: Adam,
    plain: Adam,
    training: Training,
}

impl Optimizer {
    pub fn new(training: Training) -> Result<Optimizer, SimError> {
        training.validate()?;
        let adam = |wd: f32| -> Result<Adam, SimError> {
            let mut a = Adam::new(training.lr, wd)?;
            a.beta2 = 0.95;
            a.decoupled = true;
            Ok(a)
        };
        Ok(Optimizer {
            decay: adam(training.weight_decay)?,
            plain: adam(0.0)?,
            training,
        })
    }

    /// Adam's state of the decayed and the plain group (step count, moments).
    pub fn state(&self) -> [(u64, Vec<Moments>); 2] {
        [&self.decay, &self.plain].map(|a| {
            let (t, m) = a.state();
            (t, m.to_vec())
        })
    }

    /// Restores a [`Optimizer::state`]; the next step checks the moments' sizes.
    pub fn restore(&mut self, state: [(u64, Vec<Moments>); 2]) {
        let [(td, md), (tp, mp)] = state;
        self.decay.restore(td, md);
        self.plain.restore(tp, mp);
    }

    /// Clips the gradient, then one AdamW update at rate `lr`. Returns the gradient's norm
    /// before clipping.
    pub fn step(&mut self, model: &mut Transformer, lr: f32) -> Result<f64, SimError> {
        // Summed in a fixed order: the same bits for any thread count.
        let norm = model
            .flat_gradients()
            .iter()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() {
            return Err(SimError::Invalid {
                what: "training",
                why: format!("the gradient's norm is {norm} (training diverged)"),
            });
        }
        if norm > self.training.clip {
            let scale = (self.training.clip / norm) as f32;
            model.scale_gradients(scale);
        }
        let (mut decay, mut plain) = model.parameter_groups();
        self.decay.lr = lr;
        self.plain.lr = lr;
        self.decay.step(&mut decay)?;
        self.plain.step(&mut plain)?;
        Ok(norm)
    }
}

impl Transformer {
    fn scale_gradients(&mut self, scale: f32) {
        let scale_all = |g: &mut [f32]| g.iter_mut().for_each(|g| *g *= scale);
        scale_all(&mut self.grad_token);
        scale_all(&mut self.grad_position);
        for b in &mut self.blocks {
            for l in [&mut b.qkv, &mut b.proj, &mut b.fc, &mut b.out] {
                scale_all(&mut l.grad_weight);
                scale_all(&mut l.grad_bias);
            }
            for n in [&mut b.ln1, &mut b.ln2] {
                scale_all(&mut n.grad_gamma);
                scale_all(&mut n.grad_beta);
            }
        }
        scale_all(&mut self.ln_f.grad_gamma);
        scale_all(&mut self.ln_f.grad_beta);
    }

    /// Trains on `sequences` (equal lengths) for `training.epochs` epochs of shuffled batches;
    /// epoch e's order comes from `order_rng(e)`. Calls `progress` after every step and stops
    /// early (returning `Ok(false)`) when it returns false.
    pub fn train(
        &mut self,
        sequences: &[&[u32]],
        training: Training,
        order_rng: &dyn Fn(usize) -> ChainRng,
        progress: &mut dyn FnMut(StepReport) -> bool,
    ) -> Result<bool, SimError> {
        let mut run = TrainingRun::new(training)?;
        self.train_run(sequences, &mut run, order_rng, progress)
    }

    /// Continues `run` from its step to the end (see [`Transformer::train`]); when `progress`
    /// returns false it pauses after that step (`Ok(false)`), and `run` with this model's
    /// parameters is all a later call needs to go on to the uninterrupted run's bits.
    pub fn train_run(
        &mut self,
        sequences: &[&[u32]],
        run: &mut TrainingRun,
        order_rng: &dyn Fn(usize) -> ChainRng,
        progress: &mut dyn FnMut(StepReport) -> bool,
    ) -> Result<bool, SimError> {
        let training = run.training;
        training.validate()?;
        if sequences.is_empty() {
            return Err(SimError::Invalid {
                what: "training set",
                why: "no sequences".into(),
            });
        }
        let len = sequences[0].len();
        if sequences.iter().any(|s| s.len() != len) || len > self.config.context {
            return Err(SimError::Invalid {
                what: "training set",
                why: format!(
                    "sequences must share one length of at most the context {}",
                    self.config.context
                ),
            });
        }
        let per_epoch = sequences.len().div_ceil(training.batch);
        let steps = per_epoch * training.epochs;
        let mut order: Vec<u32> = Vec::new();
        let mut order_epoch = usize::MAX;
        while run.step < steps {
            let epoch = run.step / per_epoch;
            if epoch != order_epoch {
                order = (0..sequences.len() as u32).collect();
                shuffle(&mut order, &mut order_rng(epoch));
                order_epoch = epoch;
            }
            let batch = order
                .chunks(training.batch)
                .nth(run.step % per_epoch)
                .expect("a batch per step of the epoch");
            let picked: Vec<&[u32]> = batch.iter().map(|&i| sequences[i as usize]).collect();
            self.zero_grad();
            let loss = self.loss_and_gradients(&picked);
            run.optimizer.step(self, training.rate(run.step, steps))?;
            run.step += 1;
            if !progress(StepReport {
                step: run.step,
                steps,
                loss,
            }) && run.step < steps
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A training run in progress: its settings, the steps taken and the optimizer's state.
#[derive(Debug, Clone)]
pub struct TrainingRun {
    pub training: Training,
    pub step: usize,
    pub optimizer: Optimizer,
}

impl TrainingRun {
    pub fn new(training: Training) -> Result<TrainingRun, SimError> {
        Ok(TrainingRun {
            training,
            step: 0,
            optimizer: Optimizer::new(training)?,
        })
    }
}

/// Keys and values of every layer for the tokens fed so far, for one sequence.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Per layer: keys then values, each `context x d`.
    data: Vec<f32>,
    len: usize,
}

/// How a continuation is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0: greedy (the most probable token, ties to the lowest id).
    pub temperature: f64,
    /// Keep only the k most probable tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most probable tokens whose probability reaches p (1: all).
    pub top_p: f64,
}

impl Sampling {
    /// Checks the settings; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(self.temperature.is_finite() && (0.0..=100.0).contains(&self.temperature)) {
            return Err(SimError::Invalid {
                what: "temperature",
                why: format!("must be in [0, 100], got {}", self.temperature),
            });
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SimError::Invalid {
                what: "top-p",
                why: format!("must be in (0, 1], got {}", self.top_p),
            });
        }
        Ok(())
    }

    /// Plain sampling at temperature 1.
    pub const PLAIN: Sampling = Sampling {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
    };
}

/// Scratch buffers of a decoding step for up to `rows` sequences.
struct Step {
    x: Vec<f32>,
    a: Vec<f32>,
    qkv: Vec<f32>,
    o: Vec<f32>,
    h: Vec<f32>,
    g: Vec<f32>,
    scores: Vec<f32>,
    logits: Vec<f32>,
}

impl Transformer {
    fn new_cache(&self) -> KvCache {
        let c = &self.config;
        KvCache {
            data: vec![0.0; c.layers * 2 * c.context * c.width],
            len: 0,
        }
    }

    fn new_step(&self, rows: usize) -> Step {
        let (d, c) = (self.config.width, self.config.context);
        Step {
            x: vec![0.0; rows * d],
            a: vec![0.0; rows * d],
            qkv: vec![0.0; rows * 3 * d],
            o: vec![0.0; rows * d],
            h: vec![0.0; rows * 4 * d],
            g: vec![0.0; rows * 4 * d],
            scores: vec![0.0; c],
            logits: vec![0.0; rows * self.config.vocab],
        }
    }

    /// y = x W^T + b for `rows` rows, from a dense layer's weights (no cache).
    fn dense_rows(layer: &Dense, x: &[f32], rows: usize, y: &mut [f32]) {
        few_rows_dense(x, rows, &layer.weight, Some(&layer.bias), layer.inputs(), y);
    }

    /// Feeds token `tokens[r]` to sequence `caches[r]` (all at the same position) and, if
    /// `logits`, leaves the next-token logits in `step.logits` (`rows x V`).
    fn decode_step(&self, tokens: &[u32], caches: &mut [KvCache], step: &mut Step, logits: bool) {
        let c = self.config;
        let (d, rows) = (c.width, tokens.len());
        let pos = caches[0].len;
        assert!(pos < c.context, "the context is full");
        let dh = d / c.heads;
        for (r, &t) in tokens.iter().enumerate() {
            let (t, x) = (t as usize, &mut step.x[r * d..(r + 1) * d]);
            for ((x, &e), &p) in x
                .iter_mut()
                .zip(&self.token[t * d..(t + 1) * d])
                .zip(&self.position[pos * d..(pos + 1) * d])
            {
                *x = e + p;
            }
        }
        let layer_len = 2 * c.context * d;
        for (l, block) in self.blocks.iter().enumerate() {
            for r in 0..rows {
                block
                    .ln1
                    .normalise_row(&step.x[r * d..(r + 1) * d], &mut step.a[r * d..(r + 1) * d]);
            }
            Self::dense_rows(&block.qkv, &step.a, rows, &mut step.qkv);
            let scale = block.attn.scale();
            for (r, cache) in caches.iter_mut().enumerate() {
                let qkv = &step.qkv[r * 3 * d..(r + 1) * 3 * d];
                let layer = &mut cache.data[l * layer_len..(l + 1) * layer_len];
                let (keys, values) = layer.split_at_mut(c.context * d);
                keys[pos * d..(pos + 1) * d].copy_from_slice(&qkv[d..2 * d]);
                values[pos * d..(pos + 1) * d].copy_from_slice(&qkv[2 * d..]);
                for h in 0..c.heads {
                    attend_row(
                        &qkv[h * dh..(h + 1) * dh],
                        &keys[h * dh..],
                        &values[h * dh..],
                        d,
                        pos + 1,
                        scale,
                        &mut step.scores,
                        &mut step.o[r * d + h * dh..r * d + (h + 1) * dh],
                    );
                }
            }
            Self::dense_rows(&block.proj, &step.o, rows, &mut step.a);
            add_into(&mut step.x[..rows * d], &step.a[..rows * d]);
            for r in 0..rows {
                block
                    .ln2
                    .normalise_row(&step.x[r * d..(r + 1) * d], &mut step.a[r * d..(r + 1) * d]);
            }
            Self::dense_rows(&block.fc, &step.a, rows, &mut step.h);
            gelu_row(&step.h[..rows * 4 * d], &mut step.g[..rows * 4 * d]);
            Self::dense_rows(&block.out, &step.g, rows, &mut step.a);
            add_into(&mut step.x[..rows * d], &step.a[..rows * d]);
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        if logits {
            for r in 0..rows {
                self.ln_f
                    .normalise_row(&step.x[r * d..(r + 1) * d], &mut step.a[r * d..(r + 1) * d]);
            }
            few_rows_dense(
                &step.a,
                rows,
                &self.token[..c.vocab * d],
                None,
                d,
                &mut step.logits,
            );
        }
    }

    /// Checks a prompt and its continuation's length against the model.
    pub fn check_prompt(&self, prompt: &[u32], new_tokens: usize) -> Result<(), SimError> {
        let c = self.config;
        if prompt.len() + new_tokens > c.context {
            return Err(SimError::Invalid {
                what: "context",
                why: format!(
                    "a prompt of {} tokens continued by {new_tokens} needs a context of {}, \
                     longer than the model's {}",
                    prompt.len(),
                    prompt.len() + new_tokens,
                    c.context
                ),
            });
        }
        if let Some(&t) = prompt.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(SimError::Invalid {
                what: "prompt",
                why: format!("token {t} is outside the vocabulary of {}", c.vocab),
            });
        }
        Ok(())
    }

    /// A cache holding BOS and the prompt, with the next-token logits in `step.logits[..V]`.
    fn prefill(&self, prompt: &[u32], step: &mut Step) -> KvCache {
        let mut cache = self.new_cache();
        let fed: Vec<u32> = std::iter::once(self.config.bos())
            .chain(prompt.iter().copied())
            .collect();
        for (i, &t) in fed.iter().enumerate() {
            self.decode_step(
                &[t],
                std::slice::from_mut(&mut cache),
                step,
                i + 1 == fed.len(),
            );
        }
        cache
    }

    /// The next-token logits after BOS and `prefix` (KV-cached), for tests and tools.
    pub fn next_logits(&self, prefix: &[u32]) -> Result<Vec<f32>, SimError> {
        self.check_prompt(prefix, 1)?;
        let mut step = self.new_step(1);
        self.prefill(prefix, &mut step);
        Ok(step.logits[..self.config.vocab].to_vec())
    }

    /// Continues `prompt` by `new_tokens` tokens drawn under `sampling` (KV-cached).
    pub fn sample(
        &self,
        prompt: &[u32],
        new_tokens: usize,
        sampling: Sampling,
        rng: &mut ChainRng,
    ) -> Result<Vec<u32>, SimError> {
        self.check_prompt(prompt, new_tokens)?;
        sampling.validate()?;
        let vocab = self.config.vocab;
        let mut step = self.new_step(1);
        let mut out = Vec::with_capacity(new_tokens);
        if new_tokens == 0 {
            return Ok(out);
        }
        let mut cache = self.prefill(prompt, &mut step);
        loop {
            let t = choose(&step.logits[..vocab], sampling, rng);
            out.push(t);
            if out.len() == new_tokens {
                return Ok(out);
            }
            self.decode_step(&[t], std::slice::from_mut(&mut cache), &mut step, true);
        }
    }

    /// Beam search with a repetition penalty, as the n-gram's
    /// ([`crate::lm::ngram::NGram::beam_search`]): each beam's candidates score
    /// ln p(w) (times `repetition_penalty` for a token already in the beam's text, prompt
    /// included), beams keep their summed scores, ties go to the earlier beam and then the
    /// lower token, and the best beam's tokens are returned.
    pub fn beam_search(
        &self,
        prompt: &[u32],
        new_tokens: usize,
        beams: usize,
        repetition_penalty: f64,
    ) -> Result<Vec<u32>, SimError> {
        assert!(beams >= 1 && repetition_penalty >= 1.0);
        self.check_prompt(prompt, new_tokens)?;
        if new_tokens == 0 {
            return Ok(Vec::new());
        }
        let vocab = self.config.vocab;
        let mut step = self.new_step(beams);
        let mut caches = vec![self.prefill(prompt, &mut step)];
        let mut seen = vec![false; vocab];
        for &t in prompt {
            seen[t as usize] = true;
        }
        struct Beam {
            tokens: Vec<u32>,
            score: f64,
            seen: Vec<bool>,
        }
        let mut live = vec![Beam {
            tokens: Vec::with_capacity(new_tokens),
            score: 0.0,
            seen,
        }];
        let mut spare: Vec<KvCache> = Vec::new();
        let k = beams.min(vocab);
        // A beam's best k (score, token), best first: one pass over the vocabulary.
        let mut top: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
        loop {
            let mut candidates: Vec<(f64, usize, u32)> = Vec::with_capacity(beams * beams);
            for (b, beam) in live.iter().enumerate() {
                let z = &step.logits[b * vocab..(b + 1) * vocab];
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let lse = z
                    .iter()
                    .map(|&v| f64::from(v - max).exp())
                    .sum::<f64>()
                    .ln();
                top.clear();
                for (w, (&v, &seen)) in z.iter().zip(&beam.seen).enumerate() {
                    let lp = f64::from(v - max) - lse;
                    let score = if seen { lp * repetition_penalty } else { lp };
                    // Tokens come in increasing order: an equal score loses to the earlier.
                    if top.len() == k && score.total_cmp(&top[k - 1].0).is_le() {
                        continue;
                    }
                    let at = top.partition_point(|t| t.0.total_cmp(&score).is_ge());
                    top.insert(at, (score, w as u32));
                    top.truncate(k);
                }
                candidates.extend(top.iter().map(|&(score, w)| (beam.score + score, b, w)));
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            candidates.truncate(beams);
            let next: Vec<Beam> = candidates
                .iter()
                .map(|&(score, b, w)| {
                    let parent = &live[b];
                    let mut tokens = parent.tokens.clone();
                    tokens.push(w);
                    let mut seen = parent.seen.clone();
                    seen[w as usize] = true;
                    Beam {
                        tokens,
                        score,
                        seen,
                    }
                })
                .collect();
            live = next;
            if live[0].tokens.len() == new_tokens {
                return Ok(live.swap_remove(0).tokens);
            }
            // Each new beam continues its parent's cache: moved for a parent's last child,
            // copied (the filled rows only) for the others, before the move.
            let mut children = vec![0usize; caches.len()];
            for &(_, b, _) in &candidates {
                children[b] += 1;
            }
            let filled = caches[0].len * self.config.width;
            let half = self.config.context * self.config.width;
            let mut moved: Vec<Option<KvCache>> = Vec::with_capacity(candidates.len());
            for &(_, b, _) in &candidates {
                children[b] -= 1;
                if children[b] == 0 {
                    moved.push(None);
                    continue;
                }
                let mut copy = spare.pop().unwrap_or_else(|| self.new_cache());
                for (to, from) in copy
                    .data
                    .chunks_exact_mut(half)
                    .zip(caches[b].data.chunks_exact(half))
                {
                    to[..filled].copy_from_slice(&from[..filled]);
                }
                copy.len = caches[b].len;
                moved.push(Some(copy));
            }
            let mut parents: Vec<Option<KvCache>> = caches.drain(..).map(Some).collect();
            for (slot, &(_, b, _)) in moved.iter_mut().zip(&candidates) {
                if slot.is_none() {
                    *slot = parents[b].take();
                }
            }
            spare.extend(parents.into_iter().flatten());
            caches.extend(moved.into_iter().map(|c| c.expect("a cache per beam")));
            let fed: Vec<u32> = live
                .iter()
                .map(|b| *b.tokens.last().expect("a token"))
                .collect();
            self.decode_step(&fed, &mut caches, &mut step, true);
        }
    }
}

/// A token drawn from `logits` under `sampling` (one uniform draw).
fn choose(logits: &[f32], sampling: Sampling, rng: &mut ChainRng) -> u32 {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    // Most probable first, ties to the lower id.
    order.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    if sampling.temperature == 0.0 {
        return order[0];
    }
    let max = f64::from(logits[order[0] as usize]);
    let mut p: Vec<f64> = order
        .iter()
        .map(|&w| ((f64::from(logits[w as usize]) - max) / sampling.temperature).exp())
        .collect();
    if sampling.top_k > 0 {
        p.truncate(sampling.top_k.min(p.len()));
    }
    let total: f64 = p.iter().sum();
    if sampling.top_p < 1.0 {
        let mut cumulative = 0.0;
        let mut keep = p.len();
        for (i, &q) in p.iter().enumerate() {
            cumulative += q / total;
            if cumulative >= sampling.top_p {
                keep = i + 1;
                break;
            }
        }
        p.truncate(keep);
    }
    let total: f64 = p.iter().sum();
    let u = rng.next_f64() * total;
    let mut cumulative = 0.0;
    for (i, &q) in p.iter().enumerate() {
        cumulative += q;
        if u < cumulative {
            return order[i];
        }
    }
    order[p.len() - 1]
}

#[cfg(test)]
mod tests;
