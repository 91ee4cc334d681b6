//! The two VAE architectures on the `nn` layer set: the MLP VAE 784-400-20 (the fast
//! default) and the paper's convolutional VAE (647,081 parameters on 28x28 images).

use crate::SimError;
use crate::nn::{
    Adam, Conv2d, ConvTranspose2d, Dense, Init, Relu, bce_with_logits, gaussian_kl, reparameterise,
    reparameterise_backward_add, sigmoid_forward,
};
use crate::rng::ChainRng;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Encoder Linear(P, 400) + ReLU, heads Linear(400, 20); decoder Linear(20, 400) + ReLU,
    /// Linear(400, P) (P pixels).
    Mlp,
    /// The paper's: encoder Conv(1→64, 4x4, stride 2, pad 1) and ReLU, Conv(64→128, 4x4, s2,
    /// p1) and ReLU, heads Linear(128 (H/4)(W/4), 20); decoder Linear(20, 128 (H/4)(W/4)) and
    /// ReLU, ConvTranspose(128→64, 4x4, s2, p1) and ReLU, ConvTranspose(64→1, 4x4, s2, p1).
    Paper,
}

impl Arch {
    pub fn parse(text: &str) -> Result<Arch, SimError> {
        match text {
            "mlp" => Ok(Arch::Mlp),
            "paper" => Ok(Arch::Paper),
            other => Err(SimError::Invalid {
                what: "architecture",
                why: format!("unknown architecture '{other}' (expected mlp or paper)"),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Paper => "paper",
        }
    }
}

/// Width of the MLP's hidden layers.
pub const MLP_HIDDEN: usize = 400;
/// Channels of the paper's two convolutions.
const CONV_CHANNELS: [usize; 2] = [64, 128];

// One model holds one encoder and one decoder: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Encoder {
    Mlp {
        fc: Dense,
        relu: Relu,
    },
    Paper {
        c1: Conv2d,
        r1: Relu,
        c2: Conv2d,
        r2: Relu,
    },
}

impl Encoder {
    fn forward(&mut self, x: &[f32], batch: usize) -> &[f32] {
        match self {
            Encoder::Mlp { fc, relu } => relu.forward(fc.forward(x, batch)),
            Encoder::Paper { c1, r1, c2, r2 } => {
                let a = r1.forward(c1.forward(x, batch));
                r2.forward(c2.forward(a, batch))
            }
        }
    }

    /// Backward from the features' gradient (no gradient for the input: it is data).
    fn backward(&mut self, dh: &[f32]) {
        match self {
            Encoder::Mlp { fc, relu } => fc.backward_params(relu.backward(dh)),
            Encoder::Paper { c1, r1, c2, r2 } => {
                let d = c2.backward(r2.backward(dh));
                c1.backward_params(r1.backward(d));
            }
        }
    }

    fn params_and_grads(&mut self) -> Vec<(&mut [f32], &[f32])> {
        match self {
            Encoder::Mlp { fc, .. } => fc.params_and_grads().into(),
            Encoder::Paper { c1, c2, .. } => {
                let mut v: Vec<_> = c1.params_and_grads().into();
                v.extend(c2.params_and_grads());
                v
            }
        }
    }

    fn zero_grad(&mut self) {
        match self {
            Encoder::Mlp { fc, .. } => fc.zero_grad(),
            Encoder::Paper { c1, c2, .. } => {
                c1.zero_grad();
                c2.zero_grad();
            }
        }
    }
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Decoder {
    Mlp {
        fc1: Dense,
        relu: Relu,
        fc2: Dense,
    },
    Paper {
        fc: Dense,
        r0: Relu,
        t1: ConvTranspose2d,
        r1: Relu,
        t2: ConvTranspose2d,
    },
}

impl Decoder {
    /// Logits of the pixels' Bernoulli means.
    fn forward(&mut self, z: &[f32], batch: usize) -> &[f32] {
        match self {
            Decoder::Mlp { fc1, relu, fc2 } => {
                fc2.forward(relu.forward(fc1.forward(z, batch)), batch)
            }
            Decoder::Paper { fc, r0, t1, r1, t2 } => {
                let a = r0.forward(fc.forward(z, batch));
                let b = r1.forward(t1.forward(a, batch));
                t2.forward(b, batch)
            }
        }
    }

    /// dL/dz from dL/dlogits.
    fn backward(&mut self, dlogits: &[f32]) -> &[f32] {
        match self {
            Decoder::Mlp { fc1, relu, fc2 } => fc1.backward(relu.backward(fc2.backward(dlogits))),
            Decoder::Paper { fc, r0, t1, r1, t2 } => {
                let d = r1.backward(t2.backward(dlogits));
                let d = r0.backward(t1.backward(d));
                fc.backward(d)
            }
        }
    }

    fn params_and_grads(&mut self) -> Vec<(&mut [f32], &[f32])> {
        match self {
            Decoder::Mlp { fc1, fc2, .. } => {
                let mut v: Vec<_> = fc1.params_and_grads().into();
                v.extend(fc2.params_and_grads());
                v
            }
            Decoder::Paper { fc, t1, t2, .. } => {
                let mut v: Vec<_> = fc.params_and_grads().into();
                v.extend(t1.params_and_grads());
                v.extend(t2.params_and_grads());
                v
            }
        }
    }

    fn zero_grad(&mut self) {
        match self {
            Decoder::Mlp { fc1, fc2, .. } => {
                fc1.zero_grad();
                fc2.zero_grad();
            }
            Decoder::Paper { fc, t1, t2, .. } => {
                fc.zero_grad();
                t1.zero_grad();
                t2.zero_grad();
            }
        }
    }
}

/// A VAE with a diagonal-Gaussian encoder q(z|x) = N(mu(x), diag e^{logvar(x)}), prior
/// N(0, I) and Bernoulli decoder p(x|z) with means sigmoid(logits(z)). Its loss on a batch is
/// the negative ELBO summed over the batch (PyTorch's VAE example, which the paper's run
/// used): sum_b [BCE(x_b, sigmoid(logits(z_b))) summed over pixels + KL(q(z|x_b) || N(0, I))]
/// with one reparameterised z_b = mu + e^{logvar/2} eps per image.
#[derive(Debug, Clone)]
pub struct Vae {
    arch: Arch,
    pixels: usize,
    latent: usize,
    encoder: Encoder,
    mu_head: Dense,
    logvar_head: Dense,
    decoder: Decoder,
    mu: Vec<f32>,
    logvar: Vec<f32>,
    eps: Vec<f32>,
    z: Vec<f32>,
    dlogits: Vec<f32>,
    dmu: Vec<f32>,
    dlogvar: Vec<f32>,
    dh: Vec<f32>,
}

impl Vae {
    /// A freshly initialised VAE (PyTorch's default initialisation in every layer) for
    /// `rows x cols` single-channel images and a `latent`-dimensional code.
    pub fn new(
        arch: Arch,
        rows: usize,
        cols: usize,
        latent: usize,
        rng: &mut ChainRng,
    ) -> Result<Vae, SimError> {
        let pixels = rows * cols;
        if pixels == 0 || latent == 0 {
            return Err(SimError::Invalid {
                what: "vae",
                why: format!("images of {rows}x{cols} and a latent size of {latent}"),
            });
        }
        let init = Init::PyTorch;
        let (encoder, features) = match arch {
            Arch::Mlp => (
                Encoder::Mlp {
                    fc: Dense::new(pixels, MLP_HIDDEN, init, rng)?,
                    relu: Relu::new(),
                },
                MLP_HIDDEN,
            ),
            Arch::Paper => {
                if !rows.is_multiple_of(4) || !cols.is_multiple_of(4) {
                    return Err(SimError::Invalid {
                        what: "vae",
                        why: format!(
                            "the paper's architecture halves the image twice: {rows}x{cols} is \
                             not a multiple of 4 on each side"
                        ),
                    });
                }
                let [c1, c2] = CONV_CHANNELS;
                let conv1 = Conv2d::new(1, c1, 4, 2, 1, rows, cols, init, rng)?;
                let conv2 = Conv2d::new(c1, c2, 4, 2, 1, rows / 2, cols / 2, init, rng)?;
                let features = conv2.output_len();
                (
                    Encoder::Paper {
                        c1: conv1,
                        r1: Relu::new(),
                        c2: conv2,
                        r2: Relu::new(),
                    },
                    features,
                )
            }
        };
        let mu_head = Dense::new(features, latent, init, rng)?;
        let logvar_head = Dense::new(features, latent, init, rng)?;
        let decoder = match arch {
            Arch::Mlp => Decoder::Mlp {
                fc1: Dense::new(latent, MLP_HIDDEN, init, rng)?,
                relu: Relu::new(),
                fc2: Dense::new(MLP_HIDDEN, pixels, init, rng)?,
            },
            Arch::Paper => {
                let [c1, c2] = CONV_CHANNELS;
                let (h, w) = (rows / 4, cols / 4);
                Decoder::Paper {
                    fc: Dense::new(latent, features, init, rng)?,
                    r0: Relu::new(),
                    t1: ConvTranspose2d::new(c2, c1, 4, 2, 1, 0, h, w, init, rng)?,
                    r1: Relu::new(),
                    t2: ConvTranspose2d::new(c1, 1, 4, 2, 1, 0, 2 * h, 2 * w, init, rng)?,
                }
            }
        };
        Ok(Vae {
            arch,
            pixels,
            latent,
            encoder,
            mu_head,
            logvar_head,
            decoder,
            mu: Vec::new(),
            logvar: Vec::new(),
            eps: Vec::new(),
            z: Vec::new(),
            dlogits: Vec::new(),
            dmu: Vec::new(),
            dlogvar: Vec::new(),
            dh: Vec::new(),
        })
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn pixels(&self) -> usize {
        self.pixels
    }

    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&mut self) -> usize {
        self.params_and_grads().iter().map(|(p, _)| p.len()).sum()
    }

    /// Every parameter slice with its gradient, in a fixed order (encoder, mean head,
    /// log-variance head, decoder; weights before biases).
    pub fn params_and_grads(&mut self) -> Vec<(&mut [f32], &[f32])> {
        let mut v = self.encoder.params_and_grads();
        v.extend(self.mu_head.params_and_grads());
        v.extend(self.logvar_head.params_and_grads());
        v.extend(self.decoder.params_and_grads());
        v
    }

    /// All parameters, concatenated in `params_and_grads` order.
    pub fn export(&mut self) -> Vec<f32> {
        self.params_and_grads()
            .iter()
            .flat_map(|(p, _)| p.iter().copied())
            .collect()
    }

    /// Sets all parameters from an `export` of the same architecture.
    pub fn import(&mut self, values: &[f32]) -> Result<(), SimError> {
        let count = self.parameter_count();
        if values.len() != count {
            return Err(SimError::Invalid {
                what: "vae parameters",
                why: format!("{} values for {count} parameters", values.len()),
            });
        }
        let mut at = 0;
        for (p, _) in self.params_and_grads() {
            p.copy_from_slice(&values[at..at + p.len()]);
            at += p.len();
        }
        Ok(())
    }

    fn zero_grad(&mut self) {
        self.encoder.zero_grad();
        self.mu_head.zero_grad();
        self.logvar_head.zero_grad();
        self.decoder.zero_grad();
    }

    /// The encoder's mean and log-variance for `batch` images, kept in `self.mu`/`self.logvar`.
    fn encode_into_self(&mut self, x: &[f32], batch: usize) {
        let h = self.encoder.forward(x, batch);
        let mu = self.mu_head.forward(h, batch);
        self.mu.clear();
        self.mu.extend_from_slice(mu);
        let logvar = self.logvar_head.forward(h, batch);
        self.logvar.clear();
        self.logvar.extend_from_slice(logvar);
    }

    /// The encoder's means mu(x) for `batch` images (`batch x latent`).
    pub fn encode_means(&mut self, x: &[f32], batch: usize) -> &[f32] {
        self.encode_into_self(x, batch);
        &self.mu
    }

    /// The decoder's pixel means sigmoid(logits(z)) for `batch` codes, written to `out`.
    pub fn decode_means(&mut self, z: &[f32], batch: usize, out: &mut [f32]) {
        assert_eq!(z.len(), batch * self.latent, "codes are not batch x latent");
        let logits = self.decoder.forward(z, batch);
        sigmoid_forward(logits, out);
    }

    /// Negative ELBO of `batch` images summed over the batch, with one z per image from `rng`
    /// (returns (reconstruction BCE, KL), both summed); leaves the gradients of the loss in the
    /// layers' buffers when `backward` is set.
    fn loss(&mut self, x: &[f32], batch: usize, rng: &mut ChainRng, backward: bool) -> (f64, f64) {
        assert_eq!(
            x.len(),
            batch * self.pixels,
            "images are not batch x pixels"
        );
        self.encode_into_self(x, batch);
        let n = batch * self.latent;
        self.eps.resize(n, 0.0);
        self.z.resize(n, 0.0);
        reparameterise(&self.mu, &self.logvar, rng, &mut self.eps, &mut self.z);
        let logits = self.decoder.forward(&self.z, batch);
        self.dlogits.resize(logits.len(), 0.0);
        let bce = bce_with_logits(logits, x, 1.0, &mut self.dlogits);
        self.dmu.resize(n, 0.0);
        self.dlogvar.resize(n, 0.0);
        let kl = gaussian_kl(
            &self.mu,
            &self.logvar,
            1.0,
            &mut self.dmu,
            &mut self.dlogvar,
        );
        if backward {
            let dz = self.decoder.backward(&self.dlogits);
            reparameterise_backward_add(
                dz,
                &self.eps,
                &self.logvar,
                &mut self.dmu,
                &mut self.dlogvar,
            );
            self.dh.clear();
            self.dh.resize(batch * self.mu_head.inputs(), 0.0);
            self.mu_head.backward_add(&self.dmu, &mut self.dh);
            self.logvar_head.backward_add(&self.dlogvar, &mut self.dh);
            self.encoder.backward(&self.dh);
        }
        (bce, kl)
    }

    /// One Adam step on the batch's summed negative ELBO; returns that loss.
    pub fn train_step(
        &mut self,
        x: &[f32],
        batch: usize,
        rng: &mut ChainRng,
        adam: &mut Adam,
    ) -> Result<f64, SimError> {
        self.zero_grad();
        let (bce, kl) = self.loss(x, batch, rng, true);
        adam.step(&mut self.params_and_grads())?;
        Ok(bce + kl)
    }

    /// The negative ELBO of `batch` images summed over the batch (one z per image from `rng`;
    /// no gradients).
    pub fn neg_elbo(&mut self, x: &[f32], batch: usize, rng: &mut ChainRng) -> f64 {
        let (bce, kl) = self.loss(x, batch, rng, false);
        bce + kl
    }
}
