//! VAE generations on real digits (the paper's VAE experiment).
//!
//! Generation 0 is a VAE trained from scratch on the real training images. Generation k >= 1
//! is a VAE trained from scratch, for the same number of epochs, on data built from
//! generation k-1 by the spec's strategy (`analysis::strategy::Strategy`, as for the Gaussian
//! recursion; n real training images, an epoch of n images unless said otherwise):
//!
//! - `replace` (the paper): images decoded from z ~ N(0, I) by generation k-1, drawn **fresh
//!   for every batch** (the paper's notebook; decoder means used as pixel intensities), or with
//!   `Synthetic::Fixed` one set S_{k-1} of n such images drawn once;
//! - `mix:F`: every epoch round(F n) real images drawn without replacement and n - round(F n)
//!   synthetic ones;
//! - `keep:F`: the same K = round(F n) real images (the first K of a fixed random order)
//!   every generation, and n - K synthetic ones;
//! - `accumulate`: the real images and the fixed sets S_0, ..., S_{k-1} of all earlier
//!   generations (an epoch is one pass over the (k + 1) n images);
//! - `accumulate-subsample`: n images drawn without replacement from that pool every epoch.
//!
//! Metrics of generation k (`GenerationMetrics`): on `eval_images` images decoded from fresh
//! z ~ N(0, I), the mean and standard deviation of all entries of the latent means
//! mu_0(x) of the **generation-0 encoder** (the paper's metric), the class distribution that a
//! classifier trained on the real training images assigns (and its entropy), and the pixels'
//! standard deviation across images; the negative ELBO per held-out real image; a grid of
//! images decoded from the same 64 codes in every generation.
//!
//! Every random draw comes from a `ChainRng` stream named by (seed, purpose, generation,
//! epoch), so a seed's run is a deterministic function of the spec; the kernels are
//! bit-identical for any thread count (`nn`), so is the run. A run resumed from a checkpoint
//! continues the interrupted one bit for bit (the epoch streams do not depend on what ran
//! before).

mod checkpoint;
mod classifier;
mod model;

pub use checkpoint::CheckpointError;
pub use classifier::Classifier;
pub use model::{Arch, MLP_HIDDEN, Vae};

use crate::SimError;
use crate::data::Digits;
use crate::nn::Adam;
use crate::normal::StandardNormal;
use crate::rng::{ChainRng, shuffle, stream};
use collapse_analysis::strategy::{Strategy, round_fraction};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Latent dimension (the paper's 20).
pub const LATENT: usize = 20;
/// Images in a generation's sample grid (8 x 8).
pub const GRID_IMAGES: usize = 64;
/// Images per forward pass in evaluation and synthesis.
const EVAL_BATCH: usize = 500;
/// Largest values accepted for the counts of a spec (far above any sensible run; they keep
/// sizes and time in range).
const MAX_GENERATIONS: usize = 1000;
const MAX_EPOCHS: usize = 100_000;
const MAX_BATCH: usize = 1 << 16;
const MAX_EVAL_IMAGES: usize = 1 << 20;
const MAX_SEEDS: usize = 10_000;

/// Where generation k >= 1's synthetic images come from under `replace`, `mix` and `keep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synthetic {
    /// Decoded afresh for every batch (the paper).
    Fresh,
    /// One set of n images decoded once per generation.
    Fixed,
}

impl Synthetic {
    pub fn parse(text: &str) -> Result<Synthetic, SimError> {
        match text {
            "fresh" => Ok(Synthetic::Fresh),
            "fixed" => Ok(Synthetic::Fixed),
            other => Err(SimError::Invalid {
                what: "synthetic data",
                why: format!("unknown mode '{other}' (expected fresh or fixed)"),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Synthetic::Fresh => "fresh",
            Synthetic::Fixed => "fixed",
        }
    }
}

/// A generational VAE experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeSpec {
    pub arch: Arch,
    /// Models trained: generation 0 (real data) to `generations - 1`.
    pub generations: usize,
    /// Epochs per generation.
    pub epochs: usize,
    pub batch: usize,
    /// Adam's learning rate and (L2, PyTorch's `Adam(weight_decay=...)`) weight decay.
    pub lr: f32,
    pub weight_decay: f32,
    pub strategy: Strategy,
    pub synthetic: Synthetic,
    /// Generated images per generation behind the latent, class and pixel metrics.
    pub eval_images: usize,
    /// Seed of the first run; run s uses seed + s.
    pub seed: u64,
    pub seeds: usize,
}

impl VaeSpec {
    /// The paper's settings (Adam lr 1e-3, weight decay 1e-5, batch 256 for its network; 128,
    /// as in PyTorch's VAE example, for the MLP) for `generations` and `epochs`.
    pub fn new(arch: Arch, generations: usize, epochs: usize, seeds: usize) -> VaeSpec {
        VaeSpec {
            arch,
            generations,
            epochs,
            batch: match arch {
                Arch::Mlp => 128,
                Arch::Paper => 256,
            },
            lr: 1e-3,
            weight_decay: 1e-5,
            strategy: Strategy::Replace,
            synthetic: Synthetic::Fresh,
            eval_images: 1000,
            seed: 0,
            seeds,
        }
    }

    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |why: String| {
            Err(SimError::Invalid {
                what: "vae spec",
                why,
            })
        };
        let within = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                bad(format!("{name} must be in 1..={max}, got {v}"))
            } else {
                Ok(())
            }
        };
        within("generations", self.generations, MAX_GENERATIONS)?;
        within("epochs", self.epochs, MAX_EPOCHS)?;
        within("batch", self.batch, MAX_BATCH)?;
        within("seeds", self.seeds, MAX_SEEDS)?;
        if self.eval_images < 2 || self.eval_images > MAX_EVAL_IMAGES {
            return bad(format!(
                "eval images must be in 2..={MAX_EVAL_IMAGES}, got {}",
                self.eval_images
            ));
        }
        if self.seed.checked_add(self.seeds as u64 - 1).is_none() {
            return bad(format!("seeds {} from {} overflow", self.seeds, self.seed));
        }
        Adam::new(self.lr, self.weight_decay)?;
        match self.strategy {
            Strategy::Mix(f) | Strategy::Keep(f)
                if !(f.is_finite() && (0.0..=1.0).contains(&f)) =>
            {
                bad(format!(
                    "the strategy's fraction must be in [0, 1], got {f}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Everything that determines a seed's run, for checkpoints.
    pub fn identity(&self, data: &DataSplit) -> String {
        format!(
            "vae arch={} generations={} epochs={} batch={} lr={} weight_decay={} strategy={} \
             synthetic={} eval_images={} data={} train={} heldout={}",
            self.arch.name(),
            self.generations,
            self.epochs,
            self.batch,
            self.lr,
            self.weight_decay,
            self.strategy.label(),
            self.synthetic.name(),
            self.eval_images,
            data.name,
            data.train.len(),
            data.heldout.len()
        )
    }
}

/// The training and held-out images of a data set: its own test split when it has one, else
/// every tenth image (indices 9, 19, ...) held out.
#[derive(Debug, Clone)]
pub struct DataSplit {
    pub name: String,
    pub digits: Digits,
    pub train: Vec<usize>,
    pub heldout: Vec<usize>,
}

impl DataSplit {
    pub fn new(name: &str, digits: Digits) -> Result<DataSplit, SimError> {
        let (train, heldout): (Vec<usize>, Vec<usize>) = if digits.test().is_empty() {
            (0..digits.len()).partition(|i| i % 10 != 9)
        } else {
            (digits.train().collect(), digits.test().collect())
        };
        if train.len() < 2 || heldout.is_empty() {
            return Err(SimError::Invalid {
                what: "data",
                why: format!(
                    "{name} has {} training and {} held-out images; need at least 2 and 1",
                    train.len(),
                    heldout.len()
                ),
            });
        }
        Ok(DataSplit {
            name: name.to_string(),
            digits,
            train,
            heldout,
        })
    }

    /// A split of the first `count` images (for quick runs and tests).
    pub fn truncated(&self, count: usize) -> Result<DataSplit, SimError> {
        let keep = count.min(self.digits.len());
        let p = self.digits.pixels();
        let digits = Digits::new(
            self.digits.rows,
            self.digits.cols,
            self.digits.images[..keep * p].to_vec(),
            self.digits.labels[..keep].to_vec(),
            self.digits.split.min(keep),
        )
        .map_err(|e| SimError::Invalid {
            what: "data",
            why: e.to_string(),
        })?;
        DataSplit::new(&self.name, digits)
    }
}

/// Mean and standard deviation over all entries.
fn mean_and_std(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let ss: f64 = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

/// What one generation's model does.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationMetrics {
    pub generation: usize,
    /// Mean and standard deviation (n - 1) of all entries of the generation-0 encoder's means
    /// of `eval_images` generated images.
    pub latent_mean: f64,
    pub latent_std: f64,
    /// Negative ELBO per held-out real image (nats; one z per image).
    pub heldout_neg_elbo: f64,
    /// Mean training loss per image over the last epoch.
    pub train_neg_elbo: f64,
    /// Fractions of generated images per class, as judged by the classifier.
    pub class_fractions: Vec<f64>,
    /// Entropy of `class_fractions` (nats; ln 10 = 2.303 for ten equal classes).
    pub class_entropy: f64,
    /// Mean over pixels of the standard deviation of a pixel across the generated images.
    pub pixel_std: f64,
    /// `GRID_IMAGES` images decoded from the same codes in every generation (grey levels).
    pub grid: Vec<u8>,
    /// Training examples and wall time of the generation (excluding evaluation).
    pub examples: u64,
    pub seconds: f64,
}

/// One seed's run.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRun {
    pub seed: u64,
    /// The classifier's accuracy on the held-out real images.
    pub classifier_accuracy: f64,
    /// The paper's metric on the held-out real images themselves (generation-0 encoder).
    pub real_latent_mean: f64,
    pub real_latent_std: f64,
    pub generations: Vec<GenerationMetrics>,
}

/// Seeds' runs of one spec.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeRun {
    pub spec: VaeSpec,
    pub data: String,
    pub rows: usize,
    pub cols: usize,
    pub parameters: usize,
    pub train_images: usize,
    pub heldout_images: usize,
    pub seeds: Vec<SeedRun>,
}

pub use crate::stats::MeanError;

/// A generation's metrics over seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub generation: usize,
    pub latent_std: MeanError,
    pub latent_mean: MeanError,
    pub heldout_neg_elbo: MeanError,
    pub class_entropy: MeanError,
    pub pixel_std: MeanError,
}

impl VaeRun {
    /// Per generation, each metric's mean and standard error over seeds.
    pub fn summary(&self) -> Vec<SummaryRow> {
        (0..self.spec.generations)
            .map(|g| {
                let over = |f: &dyn Fn(&GenerationMetrics) -> f64| {
                    let v: Vec<f64> = self.seeds.iter().map(|s| f(&s.generations[g])).collect();
                    MeanError::of(&v)
                };
                SummaryRow {
                    generation: g,
                    latent_std: over(&|m| m.latent_std),
                    latent_mean: over(&|m| m.latent_mean),
                    heldout_neg_elbo: over(&|m| m.heldout_neg_elbo),
                    class_entropy: over(&|m| m.class_entropy),
                    pixel_std: over(&|m| m.pixel_std),
                }
            })
            .collect()
    }
}

/// What a seed's random streams are for (the high bits of the stream's chain index).
#[derive(Clone, Copy)]
enum Purpose {
    Init = 1,
    Epoch = 2,
    Eval = 3,
    FixedSet = 4,
    Grid = 5,
    Classifier = 6,
    Order = 7,
    HeldoutElbo = 8,
}

fn rng_for(seed: u64, purpose: Purpose, generation: usize, epoch: usize) -> ChainRng {
    ChainRng::for_purpose(seed, stream::VAE, purpose as u8, generation, epoch)
}

fn normal_codes(count: usize, latent: usize, rng: &mut ChainRng) -> Vec<f32> {
    let normal = StandardNormal::new();
    (0..count * latent)
        .map(|_| normal.sample(rng) as f32)
        .collect()
}

/// `count` images decoded by `model` from z ~ N(0, I) drawn from `rng`.
fn decode_fresh(model: &mut Vae, count: usize, rng: &mut ChainRng) -> Vec<f32> {
    let z = normal_codes(count, model.latent(), rng);
    decode_codes(model, &z)
}

fn decode_codes(model: &mut Vae, z: &[f32]) -> Vec<f32> {
    let (latent, pixels) = (model.latent(), model.pixels());
    let count = z.len() / latent;
    let mut out = vec![0.0; count * pixels];
    for (zc, oc) in z
        .chunks(EVAL_BATCH * latent)
        .zip(out.chunks_mut(EVAL_BATCH * pixels))
    {
        model.decode_means(zc, zc.len() / latent, oc);
    }
    out
}

fn encode_means(model: &mut Vae, images: &[f32]) -> Vec<f32> {
    let pixels = model.pixels();
    let mut mu = Vec::with_capacity(images.len() / pixels * model.latent());
    for chunk in images.chunks(EVAL_BATCH * pixels) {
        mu.extend_from_slice(model.encode_means(chunk, chunk.len() / pixels));
    }
    mu
}

/// One training example of an epoch.
#[derive(Clone, Copy)]
enum Item {
    /// Real training image (index into `DataSplit::train`).
    Real(u32),
    /// Image i of the fixed synthetic set of generation g.
    Set(u32, u32),
    /// An image decoded afresh from the previous generation.
    Fresh,
}

/// The training examples of one epoch of generation `g` (before shuffling).
fn epoch_items(
    spec: &VaeSpec,
    g: usize,
    n: usize,
    kept_order: &[u32],
    rng: &mut ChainRng,
) -> Vec<Item> {
    let real = |count: usize| -> Vec<Item> { (0..count as u32).map(Item::Real).collect() };
    if g == 0 {
        return real(n);
    }
    let prev = (g - 1) as u32;
    let synthetic = |count: usize| -> Vec<Item> {
        match spec.synthetic {
            Synthetic::Fresh => vec![Item::Fresh; count],
            Synthetic::Fixed => (0..count as u32).map(|i| Item::Set(prev, i)).collect(),
        }
    };
    let pool = || -> Vec<Item> {
        let mut items = real(n);
        for s in 0..g as u32 {
            items.extend((0..n as u32).map(|i| Item::Set(s, i)));
        }
        items
    };
    match spec.strategy {
        Strategy::Replace => synthetic(n),
        Strategy::Mix(f) => {
            let r = round_fraction(f, n as u64) as usize;
            let mut all: Vec<u32> = (0..n as u32).collect();
            shuffle(&mut all, rng);
            let mut items: Vec<Item> = all[..r].iter().map(|&i| Item::Real(i)).collect();
            items.extend(synthetic(n - r));
            items
        }
        Strategy::Keep(f) => {
            let k = round_fraction(f, n as u64) as usize;
            let mut items: Vec<Item> = kept_order[..k].iter().map(|&i| Item::Real(i)).collect();
            items.extend(synthetic(n - k));
            items
        }
        Strategy::Accumulate => pool(),
        Strategy::AccumulateSubsample => {
            let mut all = pool();
            shuffle(&mut all, rng);
            all.truncate(n);
            all
        }
    }
}

/// Whether generation `g`'s training needs the fixed set of generation `s < g`.
fn needs_set(spec: &VaeSpec, g: usize, s: usize) -> bool {
    match spec.strategy {
        Strategy::Accumulate | Strategy::AccumulateSubsample => true,
        _ => spec.synthetic == Synthetic::Fixed && s + 1 == g,
    }
}

/// What a run reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// An epoch ended: its mean training loss per image.
    Epoch {
        seed: u64,
        generation: usize,
        epoch: usize,
        loss: f64,
    },
    /// A generation was trained and measured.
    Generation {
        seed: u64,
        generation: usize,
        latent_std: f64,
        heldout_neg_elbo: f64,
    },
    /// A checkpoint was saved.
    Saved { seed: u64 },
}

/// How a run is checkpointed, stopped and watched.
pub type Control<'a> = crate::checkpoint::Control<'a, Event>;

/// `simulate` without checkpoints, progress or a way to stop.
pub fn simulate_in_memory(spec: &VaeSpec, data: &DataSplit) -> Result<VaeRun, VaeError> {
    let stop = AtomicBool::new(false);
    let mut progress = |_: Event| {};
    simulate(spec, data, &mut Control::in_memory(&stop, &mut progress))
}

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Stopped by request after saving a checkpoint.
    #[error("interrupted")]
    Interrupted,
}

/// Runs every seed of `spec` on `data`.
pub fn simulate(
    spec: &VaeSpec,
    data: &DataSplit,
    control: &mut Control,
) -> Result<VaeRun, VaeError> {
    spec.validate()?;
    let d = &data.digits;
    let mut probe = Vae::new(
        spec.arch,
        d.rows,
        d.cols,
        LATENT,
        &mut rng_for(0, Purpose::Init, 0, 0),
    )?;
    let seeds = simulate_seeds(spec, data, 0..spec.seeds, control)?;
    Ok(VaeRun {
        spec: spec.clone(),
        data: data.name.clone(),
        rows: d.rows,
        cols: d.cols,
        parameters: probe.parameter_count(),
        train_images: data.train.len(),
        heldout_images: data.heldout.len(),
        seeds,
    })
}

/// Runs seeds `indices` (of 0..spec.seeds; seed index i is seed `spec.seed + i`) of `spec`: a
/// shard of the seeds, whose checkpoints a later full run with `resume` picks up.
pub fn simulate_seeds(
    spec: &VaeSpec,
    data: &DataSplit,
    indices: std::ops::Range<usize>,
    control: &mut Control,
) -> Result<Vec<SeedRun>, VaeError> {
    spec.validate()?;
    if indices.end > spec.seeds {
        return Err(SimError::Invalid {
            what: "seeds",
            why: format!("{indices:?} is not within the spec's {} seeds", spec.seeds),
        }
        .into());
    }
    indices
        .map(|s| run_seed(spec, data, spec.seed + s as u64, control))
        .collect()
}

/// The state of a seed's run between epochs (what a checkpoint holds).
pub(crate) struct SeedState {
    /// Parameters of every completed generation's model.
    pub models: Vec<Vec<f32>>,
    pub metrics: Vec<GenerationMetrics>,
    /// The generation in training: epochs done, its parameters and Adam's state, the training
    /// examples and seconds so far and the last epoch's loss.
    pub partial: Option<Partial>,
}

pub(crate) struct Partial {
    pub epochs_done: usize,
    pub params: Vec<f32>,
    pub adam_steps: u64,
    pub moments: Vec<(Vec<f32>, Vec<f32>)>,
    pub examples: u64,
    pub seconds: f64,
    pub last_loss: f64,
}

/// One seed's run (`seed` is the seed itself, not an index).
pub fn run_seed(
    spec: &VaeSpec,
    data: &DataSplit,
    seed: u64,
    control: &mut Control,
) -> Result<SeedRun, VaeError> {
    let d = &data.digits;
    let identity = spec.identity(data);
    let ckpt_path = control
        .checkpoint_dir
        .as_ref()
        .map(|dir| checkpoint::path(dir, seed));
    let mut state = match &ckpt_path {
        Some(path) => checkpoint::load(path, &identity, seed, control.resume)?,
        None => None,
    }
    .unwrap_or(SeedState {
        models: Vec::new(),
        metrics: Vec::new(),
        partial: None,
    });
    let mut last_save = Instant::now();
    let save = |state: &SeedState, control: &mut Control| -> Result<(), VaeError> {
        if let Some(path) = &ckpt_path {
            checkpoint::save(path, &identity, seed, state)?;
            (control.progress)(Event::Saved { seed });
        }
        Ok(())
    };

    let n = data.train.len();
    let new_model = |g: usize| {
        Vae::new(
            spec.arch,
            d.rows,
            d.cols,
            LATENT,
            &mut rng_for(seed, Purpose::Init, g, 0),
        )
    };
    let restore = |params: &[f32]| -> Result<Vae, SimError> {
        let mut m = new_model(0)?;
        m.import(params)?;
        Ok(m)
    };
    let mut classifier = Classifier::train(
        d,
        &data.train,
        &mut rng_for(seed, Purpose::Classifier, 0, 0),
    )?;
    let classifier_accuracy = classifier.accuracy(d, &data.heldout);
    let mut kept_order: Vec<u32> = (0..n as u32).collect();
    shuffle(&mut kept_order, &mut rng_for(seed, Purpose::Order, 0, 0));
    let grid_codes = normal_codes(GRID_IMAGES, LATENT, &mut rng_for(seed, Purpose::Grid, 0, 0));
    let heldout_images = d.batch(&data.heldout);
    let train_images = d.batch(&data.train);
    let pixels = d.pixels();

    // Fixed synthetic sets, decoded on demand from the saved models.
    let mut sets: Vec<Option<Vec<f32>>> = Vec::new();
    let mut gen0: Option<Vae> = match state.models.first() {
        Some(p) => Some(restore(p)?),
        None => None,
    };

    for g in state.metrics.len()..spec.generations {
        let mut prev = match g {
            0 => None,
            _ => Some(restore(&state.models[g - 1])?),
        };
        sets.resize(g, None);
        for (s, set) in sets.iter_mut().enumerate() {
            if needs_set(spec, g, s) && set.is_none() {
                let mut m = restore(&state.models[s])?;
                *set = Some(decode_fresh(
                    &mut m,
                    n,
                    &mut rng_for(seed, Purpose::FixedSet, s, 0),
                ));
            }
        }
        let mut model = new_model(g)?;
        let mut adam = Adam::new(spec.lr, spec.weight_decay)?;
        let (mut first_epoch, mut examples, mut seconds, mut last_loss) = (0, 0u64, 0.0, f64::NAN);
        if let Some(p) = state.partial.take() {
            model.import(&p.params)?;
            adam.restore(p.adam_steps, p.moments);
            (first_epoch, examples, seconds, last_loss) =
                (p.epochs_done, p.examples, p.seconds, p.last_loss);
        }
        let mut x = Vec::new();
        for epoch in first_epoch..spec.epochs {
            if control.stop.load(Ordering::SeqCst) {
                state.partial = Some(partial_of(
                    &mut model, &adam, epoch, examples, seconds, last_loss,
                ));
                save(&state, control)?;
                return Err(VaeError::Interrupted);
            }
            let start = Instant::now();
            let mut rng = rng_for(seed, Purpose::Epoch, g, epoch);
            let mut items = epoch_items(spec, g, n, &kept_order, &mut rng);
            shuffle(&mut items, &mut rng);
            let mut loss = 0.0;
            for chunk in items.chunks(spec.batch) {
                x.clear();
                let mut fresh = 0;
                for item in chunk {
                    match *item {
                        Item::Real(i) => {
                            x.extend_from_slice(&train_images[i as usize * pixels..][..pixels]);
                        }
                        Item::Set(s, i) => {
                            let set = sets[s as usize].as_ref().expect("set decoded above");
                            x.extend_from_slice(&set[i as usize * pixels..][..pixels]);
                        }
                        Item::Fresh => fresh += 1,
                    }
                }
                if fresh > 0 {
                    let teacher = prev.as_mut().expect("fresh images only after generation 0");
                    x.extend(decode_fresh(teacher, fresh, &mut rng));
                }
                loss += model.train_step(&x, chunk.len(), &mut rng, &mut adam)?;
            }
            examples += items.len() as u64;
            seconds += start.elapsed().as_secs_f64();
            last_loss = loss / items.len() as f64;
            (control.progress)(Event::Epoch {
                seed,
                generation: g,
                epoch,
                loss: last_loss,
            });
            if ckpt_path.is_some()
                && epoch + 1 < spec.epochs
                && last_save.elapsed() >= control.checkpoint_every
            {
                state.partial = Some(partial_of(
                    &mut model,
                    &adam,
                    epoch + 1,
                    examples,
                    seconds,
                    last_loss,
                ));
                save(&state, control)?;
                state.partial = None;
                last_save = Instant::now();
            }
        }
        if g == 0 {
            gen0 = Some(model.clone());
        }
        let encoder = gen0.as_mut().expect("generation 0 trained first");
        let metrics = measure(
            &mut model,
            encoder,
            &mut classifier,
            &heldout_images,
            &grid_codes,
            spec,
            seed,
            g,
        );
        let metrics = GenerationMetrics {
            train_neg_elbo: last_loss,
            examples,
            seconds,
            ..metrics
        };
        (control.progress)(Event::Generation {
            seed,
            generation: g,
            latent_std: metrics.latent_std,
            heldout_neg_elbo: metrics.heldout_neg_elbo,
        });
        state.models.push(model.export());
        state.metrics.push(metrics);
        save(&state, control)?;
        last_save = Instant::now();
    }
    let encoder = gen0.as_mut().expect("at least one generation");
    let (real_latent_mean, real_latent_std) = mean_and_std(&encode_means(encoder, &heldout_images));
    Ok(SeedRun {
        seed,
        classifier_accuracy,
        real_latent_mean,
        real_latent_std,
        generations: state.metrics,
    })
}

fn partial_of(
    model: &mut Vae,
    adam: &Adam,
    epochs_done: usize,
    examples: u64,
    seconds: f64,
    last_loss: f64,
) -> Partial {
    let (adam_steps, moments) = adam.state();
    Partial {
        epochs_done,
        params: model.export(),
        adam_steps,
        moments: moments.to_vec(),
        examples,
        seconds,
        last_loss,
    }
}

/// The metrics of a trained model (training fields left for the caller).
#[allow(clippy::too_many_arguments)]
fn measure(
    model: &mut Vae,
    gen0: &mut Vae,
    classifier: &mut Classifier,
    heldout: &[f32],
    grid_codes: &[f32],
    spec: &VaeSpec,
    seed: u64,
    g: usize,
) -> GenerationMetrics {
    let pixels = model.pixels();
    let images = decode_fresh(
        model,
        spec.eval_images,
        &mut rng_for(seed, Purpose::Eval, g, 0),
    );
    let (latent_mean, latent_std) = mean_and_std(&encode_means(gen0, &images));

    let classes = classifier.classes();
    let mut counts = vec![0usize; classes];
    for c in classifier.predict(&images) {
        counts[c] += 1;
    }
    let class_fractions: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 / spec.eval_images as f64)
        .collect();
    let class_entropy = -class_fractions
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>();

    let count = spec.eval_images as f64;
    let pixel_std = (0..pixels)
        .map(|j| {
            let column = images.iter().skip(j).step_by(pixels).map(|&v| f64::from(v));
            let mean = column.clone().sum::<f64>() / count;
            let ss: f64 = column.map(|v| (v - mean).powi(2)).sum();
            (ss / (count - 1.0)).sqrt()
        })
        .sum::<f64>()
        / pixels as f64;

    let mut rng = rng_for(seed, Purpose::HeldoutElbo, g, 0);
    let mut total = 0.0;
    for chunk in heldout.chunks(EVAL_BATCH * pixels) {
        total += model.neg_elbo(chunk, chunk.len() / pixels, &mut rng);
    }
    let heldout_neg_elbo = total / (heldout.len() / pixels) as f64;

    let grid = decode_codes(model, grid_codes)
        .iter()
        .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    GenerationMetrics {
        generation: g,
        latent_mean,
        latent_std,
        heldout_neg_elbo,
        train_neg_elbo: f64::NAN,
        class_fractions,
        class_entropy,
        pixel_std,
        grid,
        examples: 0,
        seconds: 0.0,
    }
}

#[cfg(test)]
mod tests;
