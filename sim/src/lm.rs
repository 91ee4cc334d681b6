//! Language models on real English text (the paper's Section 5.2) and their generational
//! protocol: a byte-level BPE tokenizer trained on the training split ([`bpe`]) and an
//! interpolated Kneser–Ney n-gram model with exact beam search ([`ngram`]).
//!
//! # The protocol
//!
//! The corpus's documents are split by document ([`Part::of`]); the tokenizer is trained once
//! on the training documents and fixed. Each document's tokens are cut into consecutive blocks
//! of `block` tokens (a shorter rest is dropped), the paper's 64-token blocks. Generation 0 is
//! fitted to the real training blocks. Generation g then continues **every real training
//! block** by `block` new tokens (the paper: 5-beam search with repetition penalty 3.0), and
//! those continuations are its synthetic set S_g, of the real set's size. Generation g + 1 is
//! fitted afresh to the training set the strategy builds from S_g (and the real blocks):
//! `replace` (S_g only: the paper's first regime), `mix:F` (a fresh random F of the real blocks,
//! the rest from S_g: the paper's second regime with F = 0.1, `--keep-real F`), `keep:F` (a
//! fixed F of the real blocks), `accumulate` (the real blocks and every S so far) and
//! `accumulate-subsample` (as many blocks as the real set, drawn from that pool).
//!
//! An n-gram model has no pretrained base to start from: every generation is fitted from
//! scratch to its training set, as the categorical model of the Markov theory is re-estimated
//! from its samples.
//!
//! # Per generation
//!
//! - `test_perplexity`: exp of the mean negative log-likelihood per token of the real test
//!   blocks (each scored from its start);
//! - the per-block perplexity of S_g under the **generation-0** model (the paper's histogram),
//!   with its median and 95th percentile;
//! - distinct-n (distinct n-grams over all n-grams of S_g, n = 1..4) and the repetition rate
//!   `seq_rep_4` (per block, 1 - distinct 4-grams / 4-grams, averaged);
//! - `surviving_types`: how many token types of the real training blocks occur in S_g, and the
//!   fraction surviving in each tenth of the types ranked by real frequency (the tail-loss link
//!   to `markov`).
//!
//! Every random draw comes from a stream named by (seed, purpose, generation, block), so a run
//! is bit-identical for any thread count. Beam search is deterministic: under `replace` and
//! `accumulate` every seed gives the same run (computed once, [`seed_matters`]); seeds differ
//! through the strategy's draws and `--decode sample`.

pub mod bpe;
mod checkpoint;
pub mod ngram;
pub mod transformer;

use crate::SimError;
use crate::data::{Corpus, Part};
use crate::rng::{ChainRng, shuffle, stream};
use crate::stats::MeanError;
use bpe::Bpe;
use checkpoint::{BaseState, Partial, SavedTraining, SeedState};
use collapse_analysis::strategy::{Strategy, round_fraction};
use ngram::NGram;
use rayon::prelude::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use transformer::{TrainingRun, Transformer};

pub use checkpoint::CheckpointError;

/// The model fitted at every generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelKind {
    /// Interpolated Kneser–Ney of the given order.
    Ngram { order: usize },
    /// A decoder-only transformer: a base trained once, fine-tuned at every generation.
    Transformer(TransformerSpec),
}

impl ModelKind {
    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Ngram { .. } => "ngram",
            ModelKind::Transformer(_) => "transformer",
        }
    }

    /// One line for tables and reports, e.g. "3-gram Kneser–Ney".
    pub fn describe(&self, vocab: usize, block: usize) -> String {
        match self {
            ModelKind::Ngram { order } => format!("{order}-gram Kneser–Ney"),
            ModelKind::Transformer(t) => format!(
                "transformer (width {}, {} layers of {} heads, context {}, {} parameters; base \
                 {} epoch(s) over {} training windows at lr {}, fine-tuning {} epochs at lr {}, \
                 batch {})",
                t.width,
                t.layers,
                t.heads,
                2 * block,
                t.config(vocab, block).parameters(),
                t.base_epochs,
                t.base_windows.map_or("all".to_string(), |w| w.to_string()),
                t.base_lr,
                t.epochs,
                t.lr,
                t.batch
            ),
        }
    }
}

/// The transformer's shape and training (its context is two blocks: a prompt and its
/// continuation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerSpec {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    /// Epochs of the base over the real training windows (two consecutive blocks of a
    /// document).
    pub base_epochs: usize,
    /// Use only the first this many training windows for the base (None: all of them, not
    /// limited by `max_blocks`: the base stands for a model pretrained on more text than the
    /// fine-tuning set).
    pub base_windows: Option<usize>,
    /// Fine-tuning epochs of every generation (the paper: 5, and 10 with real data kept).
    pub epochs: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Peak learning rates of the base and of fine-tuning.
    pub base_lr: f32,
    pub lr: f32,
    /// Decoupled weight decay of the matrices and embeddings.
    pub weight_decay: f32,
}

impl TransformerSpec {
    /// Width 128, 2 layers of 4 heads; base 1 epoch over every training window at 2e-3,
    /// fine-tuning 5 epochs at 1e-3, batches of 16, weight decay 0.1.
    pub const DEFAULT: TransformerSpec = TransformerSpec {
        width: 128,
        layers: 2,
        heads: 4,
        base_epochs: 1,
        base_windows: None,
        epochs: 5,
        batch: 16,
        base_lr: 2e-3,
        lr: 1e-3,
        weight_decay: 0.1,
    };

    /// The model's shape for `vocab` tokens and blocks of `block`.
    pub fn config(&self, vocab: usize, block: usize) -> transformer::Config {
        transformer::Config {
            vocab,
            context: 2 * block,
            width: self.width,
            layers: self.layers,
            heads: self.heads,
        }
    }

    fn training(&self, base: bool) -> transformer::Training {
        transformer::Training {
            epochs: if base { self.base_epochs } else { self.epochs },
            batch: self.batch,
            lr: if base { self.base_lr } else { self.lr },
            weight_decay: self.weight_decay,
            clip: 1.0,
        }
    }

    fn validate(&self, vocab: usize, block: usize) -> Result<(), SimError> {
        if 2 * block > transformer::MAX_CONTEXT {
            return Err(SimError::Invalid {
                what: "block",
                why: format!(
                    "a block of {block} tokens and its continuation need a context of {}, longer \
                     than the model's largest, {}",
                    2 * block,
                    transformer::MAX_CONTEXT
                ),
            });
        }
        if self.base_windows == Some(0) {
            return Err(SimError::Invalid {
                what: "base windows",
                why: "must be at least 1".into(),
            });
        }
        self.config(vocab, block).validate()?;
        self.training(true).validate()?;
        self.training(false).validate()
    }
}

/// How a generation continues a prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decode {
    /// Beam search with a repetition penalty on log-probabilities (the paper: 5 beams, 3.0).
    Beam {
        beams: usize,
        repetition_penalty: f64,
    },
    /// Draws from the model (temperature 1).
    Sample,
}

impl Decode {
    pub fn name(&self) -> &'static str {
        match self {
            Decode::Beam { .. } => "beam",
            Decode::Sample => "sample",
        }
    }
}

/// The paper's generation: 5 beams, repetition penalty 3.0 (the authors' code).
pub const PAPER_DECODE: Decode = Decode::Beam {
    beams: 5,
    repetition_penalty: 3.0,
};

/// Quantiles of the types ranked by real frequency in which survival is reported.
pub const RANK_BINS: usize = 10;
/// Largest block accepted (tokens).
pub const MAX_BLOCK: usize = 4096;
/// Largest number of generations accepted.
pub const MAX_GENERATIONS: usize = 1000;
/// Largest number of seeds accepted.
pub const MAX_SEEDS: usize = 10_000;

/// A language-model run.
#[derive(Debug, Clone, PartialEq)]
pub struct LmSpec {
    /// The corpus's name (recorded; the text is passed to [`simulate`]).
    pub corpus: String,
    pub model: ModelKind,
    /// Tokens of the BPE vocabulary (256..=[`Bpe::MAX_VOCAB`]).
    pub vocab_size: usize,
    /// Tokens per block, and new tokens per continuation.
    pub block: usize,
    pub generations: usize,
    pub strategy: Strategy,
    pub decode: Decode,
    /// Use only the first this many training blocks (None: all), for small runs.
    pub max_blocks: Option<usize>,
    pub seed: u64,
    pub seeds: usize,
}

impl LmSpec {
    /// The paper's protocol on `corpus` with an n-gram of `order`: 4,096 tokens, 64-token
    /// blocks, 5-beam search with penalty 3.0, `replace`, 10 generations, one seed.
    pub fn new(corpus: &str, order: usize) -> LmSpec {
        LmSpec {
            corpus: corpus.to_string(),
            model: ModelKind::Ngram { order },
            vocab_size: 4096,
            block: 64,
            generations: 10,
            strategy: Strategy::Replace,
            decode: PAPER_DECODE,
            max_blocks: None,
            seed: 0,
            seeds: 1,
        }
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &'static str, why: String| Err(SimError::Invalid { what, why });
        if !(256..=Bpe::MAX_VOCAB).contains(&self.vocab_size) {
            return bad(
                "vocab",
                format!(
                    "must be in 256..={}, got {}",
                    Bpe::MAX_VOCAB,
                    self.vocab_size
                ),
            );
        }
        if !(2..=MAX_BLOCK).contains(&self.block) {
            return bad(
                "block",
                format!("must be in 2..={MAX_BLOCK} tokens, got {}", self.block),
            );
        }
        match self.model {
            ModelKind::Ngram { order } if !(1..=ngram::MAX_ORDER).contains(&order) => {
                return bad(
                    "order",
                    format!("must be in 1..={}, got {order}", ngram::MAX_ORDER),
                );
            }
            ModelKind::Transformer(t) => t.validate(self.vocab_size, self.block)?,
            ModelKind::Ngram { .. } => {}
        }
        if !(1..=MAX_GENERATIONS).contains(&self.generations) {
            return bad(
                "generations",
                format!("must be in 1..={MAX_GENERATIONS}, got {}", self.generations),
            );
        }
        if !(1..=MAX_SEEDS).contains(&self.seeds) {
            return bad(
                "seeds",
                format!("must be in 1..={MAX_SEEDS}, got {}", self.seeds),
            );
        }
        if self.seed.checked_add(self.seeds as u64 - 1).is_none() {
            return bad("seed", format!("{} + seeds overflows", self.seed));
        }
        if self.max_blocks == Some(0) {
            return bad("blocks", "must be at least 1".into());
        }
        if let Decode::Beam {
            beams,
            repetition_penalty,
        } = self.decode
        {
            if !(1..=64).contains(&beams) {
                return bad("beams", format!("must be in 1..=64, got {beams}"));
            }
            if !(repetition_penalty.is_finite() && (1.0..=100.0).contains(&repetition_penalty)) {
                return bad(
                    "repetition penalty",
                    format!("must be in [1, 100], got {repetition_penalty}"),
                );
            }
        }
        match self.strategy {
            Strategy::Mix(f) | Strategy::Keep(f) if !(0.0..=1.0).contains(&f) => {
                bad("strategy", format!("fraction must be in [0, 1], got {f}"))
            }
            _ => Ok(()),
        }
    }
}

/// The tokenized corpus a run works on.
#[derive(Debug, Clone)]
pub struct Tokenized {
    pub tokenizer: Bpe,
    /// Real training blocks (after `max_blocks`) and test blocks.
    pub train: Vec<Vec<u32>>,
    pub test: Vec<Vec<u32>>,
    /// Windows of two consecutive blocks of a training document: a transformer base's
    /// training set (empty for an n-gram).
    pub train_windows: Vec<Vec<u32>>,
    /// Tokens of the training documents (all blocks and rests).
    pub train_tokens: usize,
    /// The token types of the real training blocks, most frequent first (ties: lower id).
    pub types_by_frequency: Vec<u32>,
}

/// Trains the tokenizer on the training documents and cuts both parts into blocks.
pub fn tokenize(corpus: &Corpus, spec: &LmSpec) -> Result<Tokenized, SimError> {
    let train_docs: Vec<&str> = corpus.part(Part::Train).collect();
    let test_docs: Vec<&str> = corpus.part(Part::Test).collect();
    let tokenizer = Bpe::train(train_docs.iter().copied(), spec.vocab_size)?;
    let blocks = |docs: &[Vec<u32>]| -> Vec<Vec<u32>> {
        docs.iter()
            .flat_map(|d| d.chunks_exact(spec.block).map(<[u32]>::to_vec))
            .collect()
    };
    let train_encoded = tokenizer.encode_all(&train_docs);
    let mut train = blocks(&train_encoded);
    let mut train_windows: Vec<Vec<u32>> = train_encoded
        .iter()
        .flat_map(|d| d.chunks_exact(2 * spec.block).map(<[u32]>::to_vec))
        .collect();
    if let Some(m) = spec.max_blocks {
        train.truncate(m);
    }
    if let ModelKind::Transformer(TransformerSpec {
        base_windows: Some(w),
        ..
    }) = spec.model
    {
        train_windows.truncate(w);
    } else if !matches!(spec.model, ModelKind::Transformer(_)) {
        train_windows.clear();
    }
    let test = blocks(&tokenizer.encode_all(&test_docs));
    if train.is_empty() || test.is_empty() {
        return Err(SimError::Invalid {
            what: "corpus",
            why: format!(
                "{} training and {} test blocks of {} tokens: both parts need at least one",
                train.len(),
                test.len(),
                spec.block
            ),
        });
    }
    let mut counts = vec![0u64; tokenizer.vocab_size()];
    for &t in train.iter().flatten() {
        counts[t as usize] += 1;
    }
    let mut types_by_frequency: Vec<u32> = (0..counts.len() as u32)
        .filter(|&t| counts[t as usize] > 0)
        .collect();
    types_by_frequency
        .sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    Ok(Tokenized {
        train_tokens: train_encoded.iter().map(Vec::len).sum(),
        tokenizer,
        train,
        test,
        train_windows,
        types_by_frequency,
    })
}

/// What one generation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationMetrics {
    pub generation: usize,
    pub test_perplexity: f64,
    /// log10 of the perplexity of each block of S_g under the generation-0 model.
    pub synthetic_log10_perplexity: Vec<f64>,
    pub synthetic_perplexity_median: f64,
    pub synthetic_perplexity_p95: f64,
    /// Distinct n-grams over all n-grams of S_g, n = 1..=4.
    pub distinct: [f64; 4],
    pub seq_rep_4: f64,
    pub surviving_types: usize,
    /// Fraction of types surviving in each of [`RANK_BINS`] equal parts of the types ranked
    /// by real frequency (most frequent first).
    pub survival_by_rank: Vec<f64>,
    /// The first synthetic block, decoded (lossy UTF-8), with its prompt.
    pub sample_prompt: String,
    pub sample_continuation: String,
}

/// One seed's generations.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRun {
    pub seed: u64,
    pub generations: Vec<GenerationMetrics>,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct LmRun {
    pub spec: LmSpec,
    pub vocab: usize,
    pub train_blocks: usize,
    pub test_blocks: usize,
    pub train_tokens: usize,
    pub real_types: usize,
    /// log10 of the perplexity of each real training block under the generation-0 model.
    pub real_log10_perplexity: Vec<f64>,
    pub seeds: Vec<SeedRun>,
}

/// The headline metrics of one generation: mean and standard error over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SummaryRow {
    pub generation: usize,
    pub test_perplexity: MeanError,
    pub synthetic_perplexity_median: MeanError,
    pub synthetic_perplexity_p95: MeanError,
    pub surviving_types: MeanError,
    pub distinct_2: MeanError,
    pub seq_rep_4: MeanError,
}

impl LmRun {
    /// The headline metrics per generation.
    pub fn summary_rows(&self) -> Vec<SummaryRow> {
        let test = self.summary(|g| g.test_perplexity);
        let median = self.summary(|g| g.synthetic_perplexity_median);
        let p95 = self.summary(|g| g.synthetic_perplexity_p95);
        let types = self.summary(|g| g.surviving_types as f64);
        let distinct_2 = self.summary(|g| g.distinct[1]);
        let rep = self.summary(|g| g.seq_rep_4);
        (0..self.spec.generations)
            .map(|g| SummaryRow {
                generation: g,
                test_perplexity: test[g],
                synthetic_perplexity_median: median[g],
                synthetic_perplexity_p95: p95[g],
                surviving_types: types[g],
                distinct_2: distinct_2[g],
                seq_rep_4: rep[g],
            })
            .collect()
    }

    /// Mean and standard error over seeds of `f` at each generation.
    pub fn summary(&self, f: impl Fn(&GenerationMetrics) -> f64) -> Vec<MeanError> {
        (0..self.spec.generations)
            .map(|g| {
                let values: Vec<f64> = self.seeds.iter().map(|s| f(&s.generations[g])).collect();
                MeanError::of(&values)
            })
            .collect()
    }
}

/// What a run reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// The tokenizer was trained and the corpus cut into blocks.
    Tokenized {
        vocab: usize,
        train_blocks: usize,
        test_blocks: usize,
    },
    /// A transformer's training step: the base's (seed None) or a generation's fine-tuning.
    Training {
        seed: Option<u64>,
        generation: usize,
        step: usize,
        steps: usize,
        loss: f64,
    },
    /// A batch of prompts was continued: `done` of the `total` of a generation's synthetic set.
    Continued {
        seed: u64,
        generation: usize,
        done: usize,
        total: usize,
    },
    /// A generation was fitted, measured and its synthetic set generated.
    Generation {
        seed: u64,
        generation: usize,
        test_perplexity: f64,
        surviving_types: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Strategy = 1,
    Sample = 2,
    KeptOrder = 3,
    /// A transformer's initialisation (the base's: seed 0).
    Init = 4,
    /// The order of a transformer's training sequences in each epoch.
    Order = 5,
    /// The order of the base's training windows.
    BaseOrder = 6,
}

/// The seed of a transformer base: fixed, so that every seed (and every shard or Slurm task
/// running one) fine-tunes the same pretrained model, as the paper's generations all start
/// from the same published OPT-125m.
pub const BASE_SEED: u64 = 0;

fn rng_for(seed: u64, purpose: Purpose, generation: usize, item: usize) -> ChainRng {
    ChainRng::for_purpose(seed, stream::LM, purpose as u8, generation, item)
}

/// A generation's model.
#[derive(Debug, Clone)]
pub enum Model {
    Ngram(NGram),
    Transformer(Box<Transformer>),
}

impl Model {
    /// ln p of each block (blocks of one length), each scored from its start.
    pub fn log_probs(&self, blocks: &[&[u32]]) -> Vec<f64> {
        match self {
            Model::Ngram(m) => blocks.par_iter().map(|b| m.log_prob(b)).collect(),
            // Scoring uses the training forward pass, which caches: on a copy.
            Model::Transformer(t) => t.as_ref().clone().log_probs(blocks),
        }
    }

    /// `prompt` continued by `new_tokens` tokens under `decode`.
    fn continue_prompt(
        &self,
        prompt: &[u32],
        new_tokens: usize,
        decode: Decode,
        rng: &mut ChainRng,
    ) -> Result<Vec<u32>, SimError> {
        match (self, decode) {
            (
                Model::Ngram(m),
                Decode::Beam {
                    beams,
                    repetition_penalty,
                },
            ) => Ok(m.beam_search(prompt, new_tokens, beams, repetition_penalty)),
            (Model::Ngram(m), Decode::Sample) => Ok(m.sample(prompt, new_tokens, rng)),
            (
                Model::Transformer(t),
                Decode::Beam {
                    beams,
                    repetition_penalty,
                },
            ) => t.beam_search(prompt, new_tokens, beams, repetition_penalty),
            (Model::Transformer(t), Decode::Sample) => {
                t.sample(prompt, new_tokens, transformer::Sampling::PLAIN, rng)
            }
        }
    }
}

/// What a training run's checkpoint callback receives: the model and the run, paused
/// between steps.
type SaveTraining<'s> = dyn FnMut(&mut Transformer, &TrainingRun) -> Result<(), LmError> + 's;

/// What a generation's checkpoint callback receives: the continuations so far.
type SaveContinuations<'s> = dyn FnMut(&[Vec<u32>]) -> Result<(), LmError> + 's;

/// Continues `run` of `model` on `sequences` to its end, reporting each step. With a
/// checkpoint folder it pauses at most every `checkpoint_every` to `save`; a stop request
/// saves and ends it with [`LmError::Interrupted`].
fn train_transformer(
    model: &mut Transformer,
    sequences: &[&[u32]],
    run: &mut TrainingRun,
    order_rng: &dyn Fn(usize) -> ChainRng,
    (seed, generation): (Option<u64>, usize),
    control: &mut Control,
    save: &mut SaveTraining,
) -> Result<(), LmError> {
    let checkpointing = control.checkpoint_dir.is_some();
    let every = control.checkpoint_every;
    let mut last_save = Instant::now();
    loop {
        let stop = control.stop;
        let progress = &mut control.progress;
        let mut stopped = false;
        let done = model.train_run(sequences, run, order_rng, &mut |r| {
            progress(Event::Training {
                seed,
                generation,
                step: r.step,
                steps: r.steps,
                loss: r.loss,
            });
            stopped = stop.load(Ordering::SeqCst);
            let due = checkpointing && last_save.elapsed() >= every;
            !(stopped || due)
        })?;
        if done {
            return Ok(());
        }
        save(model, run)?;
        last_save = Instant::now();
        if stopped {
            return Err(LmError::Interrupted);
        }
    }
}

/// The settings a transformer base depends on (its checkpoint must match them).
fn base_identity(spec: &LmSpec, t: &TransformerSpec) -> String {
    format!(
        "lm base corpus {} vocab {} block {} blocks {:?} width {} layers {} heads {} epochs {} windows {:?} batch {} lr {} weight decay {}",
        spec.corpus,
        spec.vocab_size,
        spec.block,
        spec.max_blocks,
        t.width,
        t.layers,
        t.heads,
        t.base_epochs,
        t.base_windows,
        t.batch,
        t.base_lr,
        t.weight_decay
    )
}

/// What every seed starts from: the n-gram fitted to the real blocks (generation 0 itself),
/// or the transformer trained from [`BASE_SEED`] on the real training windows. With a
/// checkpoint folder the base is saved there (`base.ckpt`, also during training) and a saved
/// base of the same settings is picked up, with or without `resume`: it is a function of them.
pub fn base_model(
    spec: &LmSpec,
    data: &Tokenized,
    control: &mut Control,
) -> Result<Model, LmError> {
    let vocab = data.tokenizer.vocab_size();
    match spec.model {
        ModelKind::Ngram { order } => {
            let real: Vec<&[u32]> = data.train.iter().map(Vec::as_slice).collect();
            Ok(Model::Ngram(NGram::fit(&real, vocab, order)?))
        }
        ModelKind::Transformer(t) => {
            if data.train_windows.is_empty() {
                return Err(SimError::Invalid {
                    what: "corpus",
                    why: format!(
                        "no training document has {} tokens (two blocks) to train a base on",
                        2 * spec.block
                    ),
                }
                .into());
            }
            let config = t.config(vocab, spec.block);
            let mut model = Transformer::new(config, &mut rng_for(BASE_SEED, Purpose::Init, 0, 0))?;
            let file = control.checkpoint_dir.as_deref().map(checkpoint::base_path);
            let identity = base_identity(spec, &t);
            let mut run = TrainingRun::new(t.training(true))?;
            match file
                .as_deref()
                .map(|path| checkpoint::load_base(path, &identity))
                .transpose()?
                .flatten()
            {
                Some(BaseState::Trained(params)) => {
                    model.set_flat_parameters(&params)?;
                    return Ok(Model::Transformer(Box::new(model)));
                }
                Some(BaseState::Training(saved)) => saved.restore(&mut model, &mut run)?,
                None => {}
            }
            let windows: Vec<&[u32]> = data.train_windows.iter().map(Vec::as_slice).collect();
            let order = |epoch: usize| rng_for(BASE_SEED, Purpose::BaseOrder, 0, epoch);
            let mut save = |m: &mut Transformer, r: &TrainingRun| -> Result<(), LmError> {
                if let Some(path) = &file {
                    let state = BaseState::Training(SavedTraining::of(m, r));
                    checkpoint::save_base(path, &identity, &state)?;
                }
                Ok(())
            };
            train_transformer(
                &mut model,
                &windows,
                &mut run,
                &order,
                (None, 0),
                control,
                &mut save,
            )?;
            if let Some(path) = &file {
                let state = BaseState::Trained(model.flat_parameters());
                checkpoint::save_base(path, &identity, &state)?;
            }
            Ok(Model::Transformer(Box::new(model)))
        }
    }
}

/// The model of generation g >= 0 of `seed` trained on `blocks`: an n-gram fitted afresh, or
/// the transformer base fine-tuned (continuing `resume`, a paused fine-tuning, if given).
#[allow(clippy::too_many_arguments)]
fn fit_generation(
    spec: &LmSpec,
    base: &Model,
    blocks: &[&[u32]],
    seed: u64,
    g: usize,
    resume: Option<SavedTraining>,
    control: &mut Control,
    save: &mut SaveTraining,
) -> Result<Model, LmError> {
    match (spec.model, base) {
        (ModelKind::Ngram { order }, Model::Ngram(b)) => {
            Ok(Model::Ngram(NGram::fit(blocks, b.vocab(), order)?))
        }
        (ModelKind::Transformer(t), Model::Transformer(b)) => {
            let mut model = b.as_ref().clone();
            let mut run = TrainingRun::new(t.training(false))?;
            if let Some(saved) = resume {
                saved.restore(&mut model, &mut run)?;
            }
            let order = |epoch: usize| rng_for(seed, Purpose::Order, g, epoch);
            train_transformer(
                &mut model,
                blocks,
                &mut run,
                &order,
                (Some(seed), g),
                control,
                save,
            )?;
            Ok(Model::Transformer(Box::new(model)))
        }
        _ => unreachable!("the base is of the spec's kind"),
    }
}

/// `base` (a transformer) with `params`.
fn with_parameters(base: &Model, params: &[f32]) -> Result<Model, SimError> {
    match base {
        Model::Transformer(b) => {
            let mut model = b.as_ref().clone();
            model.set_flat_parameters(params)?;
            Ok(Model::Transformer(Box::new(model)))
        }
        Model::Ngram(_) => unreachable!("an n-gram's generations are refitted, not restored"),
    }
}

/// How a run is checkpointed (the transformer's base too), stopped and watched.
pub type Control<'a> = crate::checkpoint::Control<'a, Event>;

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Stopped by request after saving a checkpoint.
    #[error("interrupted")]
    Interrupted,
}

/// Runs every seed of `spec` on `corpus` in memory (no checkpoints, no stop).
pub fn simulate(
    corpus: &Corpus,
    spec: &LmSpec,
    progress: &mut (dyn FnMut(Event) + Send),
) -> Result<LmRun, SimError> {
    let stop = AtomicBool::new(false);
    simulate_with(corpus, spec, &mut Control::in_memory(&stop, progress)).map_err(in_memory)
}

/// The error of a run without checkpoints or stop requests.
fn in_memory(e: LmError) -> SimError {
    match e {
        LmError::Sim(e) => e,
        other => unreachable!("an in-memory run failed with {other}"),
    }
}

/// Tokenizes the corpus (reported as an event) and gets the base.
fn prepare(
    corpus: &Corpus,
    spec: &LmSpec,
    control: &mut Control,
) -> Result<(Tokenized, Model), LmError> {
    spec.validate()?;
    let data = tokenize(corpus, spec)?;
    (control.progress)(Event::Tokenized {
        vocab: data.tokenizer.vocab_size(),
        train_blocks: data.train.len(),
        test_blocks: data.test.len(),
    });
    let base = base_model(spec, &data, control)?;
    Ok((data, base))
}

/// Runs every seed of `spec` on `corpus` under `control`: each seed's checkpoint is written
/// after every generation (and within one, see [`Control`]), and a resumed run gives the
/// uninterrupted run's results.
pub fn simulate_with(
    corpus: &Corpus,
    spec: &LmSpec,
    control: &mut Control,
) -> Result<LmRun, LmError> {
    let (data, base) = prepare(corpus, spec, control)?;
    let (seeds, first_zero) = run_seeds(spec, &data, &base, 0..spec.seeds, control)?;
    // The real blocks' histogram is scored by the first seed's generation 0.
    let real: Vec<&[u32]> = data.train.iter().map(Vec::as_slice).collect();
    let real_log10_perplexity =
        block_log10_perplexities(first_zero.as_ref().unwrap_or(&base), &real);
    Ok(LmRun {
        spec: spec.clone(),
        vocab: data.tokenizer.vocab_size(),
        train_blocks: data.train.len(),
        test_blocks: data.test.len(),
        train_tokens: data.train_tokens,
        real_types: data.types_by_frequency.len(),
        real_log10_perplexity,
        seeds,
    })
}

/// Runs seeds `indices` (of 0..spec.seeds; index i is seed `spec.seed + i`) of `spec`: a shard
/// of the seeds, whose checkpoints (in `control`'s folder, which it needs) a later whole run
/// with `resume` picks up.
pub fn simulate_seeds(
    corpus: &Corpus,
    spec: &LmSpec,
    indices: std::ops::Range<usize>,
    control: &mut Control,
) -> Result<Vec<SeedRun>, LmError> {
    if indices.end > spec.seeds || indices.is_empty() {
        return Err(SimError::Invalid {
            what: "seeds",
            why: format!(
                "{indices:?} is not a part of the spec's {} seeds",
                spec.seeds
            ),
        }
        .into());
    }
    let (data, base) = prepare(corpus, spec, control)?;
    Ok(run_seeds(spec, &data, &base, indices, control)?.0)
}

/// The seeds `indices`, and the first one's generation 0 (a transformer's).
fn run_seeds(
    spec: &LmSpec,
    data: &Tokenized,
    base: &Model,
    indices: std::ops::Range<usize>,
    control: &mut Control,
) -> Result<(Vec<SeedRun>, Option<Model>), LmError> {
    let mut seeds: Vec<SeedRun> = Vec::with_capacity(indices.len());
    let mut first_zero = None;
    for s in indices {
        let seed = spec.seed + s as u64;
        let run = match seeds.first() {
            // Nothing random: every seed's run is the first one's (tested against running it).
            Some(first) if !seed_matters(spec) => SeedRun {
                seed,
                generations: first.generations.clone(),
            },
            _ => {
                let (run, zero) = seed_run(spec, data, base, seed, control)?;
                if seeds.is_empty() {
                    first_zero = zero;
                }
                run
            }
        };
        seeds.push(run);
    }
    Ok((seeds, first_zero))
}

/// What a checkpoint must match: every setting that changes a seed's run.
fn identity(spec: &LmSpec) -> String {
    format!(
        "lm corpus {} model {:?} vocab {} block {} generations {} strategy {} decode {:?} blocks {:?}",
        spec.corpus,
        spec.model,
        spec.vocab_size,
        spec.block,
        spec.generations,
        spec.strategy.label(),
        spec.decode,
        spec.max_blocks
    )
}

/// Whether the seed changes a run: through a transformer's fine-tuning order, a random
/// strategy (`mix`, `keep`, `accumulate-subsample`) or sampled continuations; an n-gram with
/// beam search is deterministic.
pub fn seed_matters(spec: &LmSpec) -> bool {
    matches!(spec.model, ModelKind::Transformer(_))
        || spec.decode == Decode::Sample
        || !matches!(spec.strategy, Strategy::Replace | Strategy::Accumulate)
}

/// One seed in memory (see [`run_seed_with`]).
pub fn run_seed(
    spec: &LmSpec,
    data: &Tokenized,
    base: &Model,
    seed: u64,
    progress: &mut (dyn FnMut(Event) + Send),
) -> Result<SeedRun, SimError> {
    let stop = AtomicBool::new(false);
    run_seed_with(
        spec,
        data,
        base,
        seed,
        &mut Control::in_memory(&stop, progress),
    )
    .map_err(in_memory)
}

/// One seed: generation 0 is the n-gram `base` or the transformer base fine-tuned on the real
/// blocks; each later one is fitted to (or fine-tuned on) the strategy's training set. With a
/// checkpoint folder, the seed's state is saved after every generation (and within one, see
/// [`Control`]) and a saved state is continued.
pub fn run_seed_with(
    spec: &LmSpec,
    data: &Tokenized,
    base: &Model,
    seed: u64,
    control: &mut Control,
) -> Result<SeedRun, LmError> {
    Ok(seed_run(spec, data, base, seed, control)?.0)
}

/// [`run_seed_with`], also giving a transformer's generation 0.
fn seed_run(
    spec: &LmSpec,
    data: &Tokenized,
    base: &Model,
    seed: u64,
    control: &mut Control,
) -> Result<(SeedRun, Option<Model>), LmError> {
    let n = data.train.len();
    let mut kept_order: Vec<u32> = (0..n as u32).collect();
    shuffle(
        &mut kept_order,
        &mut rng_for(seed, Purpose::KeptOrder, 0, 0),
    );
    let identity = identity(spec);
    let file = control
        .checkpoint_dir
        .as_ref()
        .map(|dir| crate::checkpoint::path(dir, seed));
    let (mut state, mut partial) = match &file {
        Some(path) => checkpoint::load(path, &identity, seed, control.resume)?,
        None => None,
    }
    .unwrap_or_default();
    let save = |state: &SeedState, partial: Option<&Partial>| -> Result<(), LmError> {
        if let Some(path) = &file {
            checkpoint::save(path, &identity, seed, state, partial)?;
        }
        Ok(())
    };
    let accumulating = matches!(
        spec.strategy,
        Strategy::Accumulate | Strategy::AccumulateSubsample
    );
    let real: Vec<&[u32]> = data.train.iter().map(Vec::as_slice).collect();
    // A transformer's generation 0: the base fine-tuned on the real blocks (it scores every
    // generation), saved as soon as it is trained.
    let zero = match (spec.model, &state.zero) {
        (ModelKind::Ngram { .. }, _) => None,
        (ModelKind::Transformer(_), Some(params)) => Some(with_parameters(base, params)?),
        (ModelKind::Transformer(_), None) => {
            let resume = match partial.take() {
                Some(Partial::Training {
                    generation: 0,
                    saved,
                }) => Some(saved),
                _ => None,
            };
            let mut save_training = |m: &mut Transformer, r: &TrainingRun| {
                let saved = SavedTraining::of(m, r);
                save(
                    &state,
                    Some(&Partial::Training {
                        generation: 0,
                        saved,
                    }),
                )
            };
            let zero = fit_generation(
                spec,
                base,
                &real,
                seed,
                0,
                resume,
                control,
                &mut save_training,
            )?;
            if let Model::Transformer(t) = &zero {
                state.zero = Some(t.as_ref().clone().flat_parameters());
            }
            save(&state, None)?;
            Some(zero)
        }
    };
    let scorer = zero.as_ref().unwrap_or(base);
    let mut current: Option<Model>;
    for g in state.generations.len()..spec.generations {
        let resumed = partial.take().filter(|p| p.generation() == g);
        let (mut resume_training, mut continued) = (None, Vec::new());
        let mut trained: Option<Vec<f32>> = None;
        match resumed {
            Some(Partial::Training { saved, .. }) => resume_training = Some(saved),
            Some(Partial::Continuing { params, blocks, .. }) => {
                (trained, continued) = (params, blocks);
            }
            None => {}
        }
        let model = match g {
            0 => scorer,
            _ => {
                current = Some(match &trained {
                    Some(params) => with_parameters(base, params)?,
                    None => {
                        let items = training_items(spec, g, n, &kept_order, seed);
                        let blocks: Vec<&[u32]> = items
                            .iter()
                            .map(|&(set, i)| match set {
                                None => data.train[i].as_slice(),
                                Some(s) => state.sets[s][i].as_slice(),
                            })
                            .collect();
                        let mut save_training = |m: &mut Transformer, r: &TrainingRun| {
                            let saved = SavedTraining::of(m, r);
                            save(
                                &state,
                                Some(&Partial::Training {
                                    generation: g,
                                    saved,
                                }),
                            )
                        };
                        let model = fit_generation(
                            spec,
                            base,
                            &blocks,
                            seed,
                            g,
                            resume_training,
                            control,
                            &mut save_training,
                        )?;
                        if let Model::Transformer(t) = &model {
                            trained = Some(t.as_ref().clone().flat_parameters());
                        }
                        model
                    }
                });
                current.as_ref().expect("just fitted")
            }
        };
        let mut save_continuing = |blocks: &[Vec<u32>]| {
            let partial = Partial::Continuing {
                generation: g,
                params: trained.clone(),
                blocks: blocks.to_vec(),
            };
            save(&state, Some(&partial))
        };
        let synthetic = continue_blocks(
            model,
            &data.train,
            spec,
            (seed, g),
            continued,
            control,
            &mut save_continuing,
        )?;
        let metrics = measure(g, model, scorer, data, &synthetic);
        (control.progress)(Event::Generation {
            seed,
            generation: g,
            test_perplexity: metrics.test_perplexity,
            surviving_types: metrics.surviving_types,
        });
        state.generations.push(metrics);
        // Without accumulation the only set kept is S_g, at index 0.
        if !accumulating {
            state.sets.clear();
        }
        state.sets.push(synthetic);
        save(&state, None)?;
        if control.stop.load(Ordering::SeqCst) && g + 1 < spec.generations {
            return Err(LmError::Interrupted);
        }
    }
    Ok((
        SeedRun {
            seed,
            generations: state.generations,
        },
        zero,
    ))
}

/// The training blocks of generation g >= 1 as (None: real block i | Some(s): block i of the
/// s-th kept synthetic set), before fitting (order does not matter to an n-gram).
fn training_items(
    spec: &LmSpec,
    g: usize,
    n: usize,
    kept_order: &[u32],
    seed: u64,
) -> Vec<(Option<usize>, usize)> {
    let latest = match spec.strategy {
        Strategy::Accumulate | Strategy::AccumulateSubsample => g - 1,
        _ => 0,
    };
    let synthetic = |indices: &mut dyn Iterator<Item = usize>| -> Vec<(Option<usize>, usize)> {
        indices.map(|i| (Some(latest), i)).collect()
    };
    let mut rng = rng_for(seed, Purpose::Strategy, g, 0);
    match spec.strategy {
        Strategy::Replace => synthetic(&mut (0..n)),
        Strategy::Mix(f) | Strategy::Keep(f) => {
            let r = round_fraction(f, n as u64) as usize;
            let order: Vec<u32> = match spec.strategy {
                Strategy::Mix(_) => {
                    let mut all: Vec<u32> = (0..n as u32).collect();
                    shuffle(&mut all, &mut rng);
                    all
                }
                _ => kept_order.to_vec(),
            };
            // Real blocks at the first r positions of the order; the other prompts' synthetic
            // continuations fill the rest, so every prompt appears once.
            let mut items: Vec<(Option<usize>, usize)> =
                order[..r].iter().map(|&i| (None, i as usize)).collect();
            items.extend(synthetic(&mut order[r..].iter().map(|&i| i as usize)));
            items
        }
        Strategy::Accumulate | Strategy::AccumulateSubsample => {
            let mut pool: Vec<(Option<usize>, usize)> = (0..n).map(|i| (None, i)).collect();
            for s in 0..g {
                pool.extend((0..n).map(|i| (Some(s), i)));
            }
            if spec.strategy == Strategy::AccumulateSubsample {
                shuffle(&mut pool, &mut rng);
                pool.truncate(n);
            }
            pool
        }
    }
}

/// Prompts continued between two looks at the stop flag and the checkpoint clock, per thread.
const PROMPTS_PER_THREAD: usize = 16;

/// S_g: every prompt continued by `block` new tokens, after the `done` ones. Prompts go in
/// batches (each continuation has its own random stream, so batches do not change them); with
/// a checkpoint folder the continuations so far are saved at most every `checkpoint_every`,
/// and a stop request saves them and ends the run with [`LmError::Interrupted`].
fn continue_blocks(
    model: &Model,
    prompts: &[Vec<u32>],
    spec: &LmSpec,
    (seed, g): (u64, usize),
    mut done: Vec<Vec<u32>>,
    control: &mut Control,
    save: &mut SaveContinuations,
) -> Result<Vec<Vec<u32>>, LmError> {
    let batch = PROMPTS_PER_THREAD * rayon::current_num_threads();
    let mut last_save = Instant::now();
    while done.len() < prompts.len() {
        let start = done.len();
        let end = (start + batch).min(prompts.len());
        let continued = prompts[start..end]
            .par_iter()
            .enumerate()
            .map(|(k, prompt)| {
                let mut rng = rng_for(seed, Purpose::Sample, g, start + k);
                model.continue_prompt(prompt, spec.block, spec.decode, &mut rng)
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        done.extend(continued);
        (control.progress)(Event::Continued {
            seed,
            generation: g,
            done: done.len(),
            total: prompts.len(),
        });
        if done.len() < prompts.len() {
            let stop = control.stop.load(Ordering::SeqCst);
            let due =
                control.checkpoint_dir.is_some() && last_save.elapsed() >= control.checkpoint_every;
            if stop || due {
                save(&done)?;
                last_save = Instant::now();
            }
            if stop {
                return Err(LmError::Interrupted);
            }
        }
    }
    Ok(done)
}

/// log10 of each block's perplexity under `model`.
fn block_log10_perplexities(model: &Model, blocks: &[&[u32]]) -> Vec<f64> {
    model
        .log_probs(blocks)
        .iter()
        .zip(blocks)
        .map(|(lp, b)| -lp / b.len() as f64 / std::f64::consts::LN_10)
        .collect()
}

/// The q-quantile (linear interpolation) of `values`, which it sorts.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let x = q * (values.len() - 1) as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    values[lo] + (x - lo as f64) * (values[hi] - values[lo])
}

/// Distinct n-grams over all n-grams of `blocks` (within blocks).
pub fn distinct_n(blocks: &[Vec<u32>], n: usize) -> f64 {
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for b in blocks {
        for gram in b.windows(n) {
            seen.insert(gram);
            total += 1;
        }
    }
    if total == 0 {
        f64::NAN
    } else {
        seen.len() as f64 / total as f64
    }
}

/// Per block, 1 - distinct 4-grams / 4-grams, averaged over blocks.
pub fn seq_rep_4(blocks: &[Vec<u32>]) -> f64 {
    let reps: Vec<f64> = blocks
        .iter()
        .filter(|b| b.len() >= 4)
        .map(|b| {
            let grams: HashSet<&[u32]> = b.windows(4).collect();
            1.0 - grams.len() as f64 / (b.len() - 3) as f64
        })
        .collect();
    reps.iter().sum::<f64>() / reps.len() as f64
}

fn measure(
    g: usize,
    model: &Model,
    base: &Model,
    data: &Tokenized,
    synthetic: &[Vec<u32>],
) -> GenerationMetrics {
    let test: Vec<&[u32]> = data.test.iter().map(Vec::as_slice).collect();
    // Summed in block order (a parallel sum's order would depend on the threads).
    let nll: f64 = -model.log_probs(&test).iter().sum::<f64>();
    let tokens: usize = test.iter().map(|b| b.len()).sum();
    let synthetic_refs: Vec<&[u32]> = synthetic.iter().map(Vec::as_slice).collect();
    let log10 = block_log10_perplexities(base, &synthetic_refs);
    let mut sorted = log10.clone();
    let median = 10f64.powf(quantile(&mut sorted, 0.5));
    let p95 = 10f64.powf(quantile(&mut sorted, 0.95));
    let mut present = vec![false; data.tokenizer.vocab_size()];
    for &t in synthetic.iter().flatten() {
        present[t as usize] = true;
    }
    let ranked = &data.types_by_frequency;
    let surviving_types = ranked.iter().filter(|&&t| present[t as usize]).count();
    let survival_by_rank = (0..RANK_BINS)
        .map(|b| {
            let part = &ranked[b * ranked.len() / RANK_BINS..(b + 1) * ranked.len() / RANK_BINS];
            part.iter().filter(|&&t| present[t as usize]).count() as f64 / part.len() as f64
        })
        .collect();
    GenerationMetrics {
        generation: g,
        test_perplexity: (nll / tokens as f64).exp(),
        synthetic_log10_perplexity: log10,
        synthetic_perplexity_median: median,
        synthetic_perplexity_p95: p95,
        distinct: [1, 2, 3, 4].map(|n| distinct_n(synthetic, n)),
        seq_rep_4: seq_rep_4(synthetic),
        surviving_types,
        survival_by_rank,
        sample_prompt: data.tokenizer.decode_lossy(&data.train[0]),
        sample_continuation: data.tokenizer.decode_lossy(&synthetic[0]),
    }
}

#[cfg(test)]
mod tests;
