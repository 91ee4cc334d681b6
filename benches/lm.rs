//! Benches of the language-model pieces (`collapse_sim::lm`) on the Brown Corpus when it is
//! cached (`collapse data fetch brown`), else on a synthetic corpus (said in the output):
//!
//! - BPE: training a 4,096-token vocabulary on the training documents, and encoding them
//!   (criterion's "elem/s" are bytes/s);
//! - the 3-gram Kneser–Ney fit on 64-token training blocks (tokens/s);
//! - generation: continuing 64 blocks by 64 tokens with 5-beam search and repetition penalty
//!   3.0 (the paper's decoding), and by sampling, on 1 and 2 threads (generated tokens/s);
//! - the transformer (`lm::transformer`, the default shape: 4,096 tokens, width 128, 2 layers
//!   of 4 heads, context 128; 937,600 parameters): one AdamW training step on 16 sequences of
//!   128 tokens on 1 and 2 threads (training tokens/s), and continuing 8 blocks by 64 tokens
//!   with KV-cached 5-beam search, penalty 3.0 (generated tokens/s).
//!
//! Then, when `python3 -c "import jax"` succeeds, it times the same transformer training step
//! here and in `benches/peers/lm_transformer_jax.py` (plain JAX, jit-compiled, the same model,
//! AdamW and clipping) on one thread, alternating rounds, and prints the ratio.

use collapse_sim::data::{Corpus, Part};
use collapse_sim::lm::bpe::Bpe;
use collapse_sim::lm::ngram::NGram;
use collapse_sim::lm::transformer::{Config, Optimizer, Training, Transformer};
use collapse_sim::rng::{ChainRng, stream};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;

mod common;

const BLOCK: usize = 64;
const PROMPTS: usize = 64;

fn corpus() -> Corpus {
    match collapse_sim::data::load_corpus("brown") {
        Ok(c) => c,
        Err(e) => {
            println!("lm bench: {e}; using a synthetic corpus instead");
            let words = [
                "the", "of", "and", "a", "to", "in", "is", "that", "it", "was",
            ];
            let docs: Vec<String> = (0..200)
                .map(|d| {
                    (0..2000)
                        .map(|i| words[(d * 31 + i * i * 7 + i / 3) % words.len()])
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            Corpus::new(&docs)
        }
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

fn benches(c: &mut Criterion) {
    let corpus = corpus();
    let train: Vec<&str> = corpus.part(Part::Train).collect();
    let bytes: usize = train.iter().map(|d| d.len()).sum();
    let mut group = c.benchmark_group("lm/bpe");
    group.throughput(Throughput::Elements(bytes as u64));
    group.sample_size(10);
    group.bench_function("train_4096", |b| {
        b.iter(|| black_box(Bpe::train(train.iter().copied(), 4096).expect("a tokenizer")))
    });
    let bpe = Bpe::train(train.iter().copied(), 4096).expect("a tokenizer");
    group.bench_function("encode", |b| b.iter(|| black_box(bpe.encode_all(&train))));
    group.finish();

    let blocks: Vec<Vec<u32>> = bpe
        .encode_all(&train)
        .iter()
        .flat_map(|d| d.chunks_exact(BLOCK).map(<[u32]>::to_vec))
        .collect();
    let refs: Vec<&[u32]> = blocks.iter().map(Vec::as_slice).collect();
    let mut group = c.benchmark_group("lm/ngram");
    group.throughput(Throughput::Elements((refs.len() * BLOCK) as u64));
    group.sample_size(10);
    group.bench_function("fit_3gram", |b| {
        b.iter(|| black_box(NGram::fit(&refs, bpe.vocab_size(), 3).expect("a model")))
    });
    group.finish();

    let model = NGram::fit(&refs, bpe.vocab_size(), 3).expect("a model");
    let prompts = &blocks[..PROMPTS.min(blocks.len())];
    let mut group = c.benchmark_group("lm/generate");
    group.throughput(Throughput::Elements((prompts.len() * BLOCK) as u64));
    group.sample_size(10);
    for threads in [1, 2] {
        let p = pool(threads);
        let beam = |_: usize, pr: &[u32]| model.beam_search(pr, BLOCK, 5, 3.0);
        continuations(
            &mut group,
            format!("beam5_penalty3_{threads}_thread"),
            &p,
            prompts,
            beam,
        );
        let sample = |i: usize, pr: &[u32]| {
            let mut rng = ChainRng::for_chain(1, stream::TEST, i as u64);
            model.sample(pr, BLOCK, &mut rng)
        };
        continuations(
            &mut group,
            format!("sample_{threads}_thread"),
            &p,
            prompts,
            sample,
        );
    }
    group.finish();
    transformer_benches(c, &blocks);
}

/// The default transformer shape, as the peer's `--config default`.
const SHAPE: Config = Config {
    vocab: 4096,
    context: 128,
    width: 128,
    layers: 2,
    heads: 4,
};
/// Sequences of `SHAPE.context` tokens per training step.
const TRAIN_BATCH: usize = 16;

/// A model, its optimiser and one fixed batch of training sequences.
struct Stepper {
    model: Transformer,
    optimizer: Optimizer,
    batch: Vec<Vec<u32>>,
}

impl Stepper {
    fn new() -> Stepper {
        let mut rng = ChainRng::for_chain(0, stream::TEST, 0);
        let model = Transformer::new(SHAPE, &mut rng).expect("a model");
        let batch = (0..TRAIN_BATCH)
            .map(|_| {
                (0..SHAPE.context)
                    .map(|_| (rng.next_u64() % SHAPE.vocab as u64) as u32)
                    .collect()
            })
            .collect();
        let optimizer = Optimizer::new(Training {
            epochs: 1,
            batch: TRAIN_BATCH,
            lr: 1e-3,
            weight_decay: 0.1,
            clip: 1.0,
        })
        .expect("an optimiser");
        Stepper {
            model,
            optimizer,
            batch,
        }
    }

    fn step(&mut self) -> f64 {
        let refs: Vec<&[u32]> = self.batch.iter().map(Vec::as_slice).collect();
        self.model.zero_grad();
        let loss = self.model.loss_and_gradients(&refs);
        self.optimizer
            .step(&mut self.model, 1e-3)
            .expect("a finite gradient");
        loss
    }
}

fn transformer_benches(c: &mut Criterion, blocks: &[Vec<u32>]) {
    let tokens = (TRAIN_BATCH * SHAPE.context) as u64;
    let mut group = c.benchmark_group("lm/transformer_train_step");
    group.throughput(Throughput::Elements(tokens));
    group.sample_size(10);
    for threads in [1, 2] {
        let p = pool(threads);
        let mut s = Stepper::new();
        group.bench_function(format!("batch_{TRAIN_BATCH}x128_{threads}_thread"), |b| {
            p.install(|| b.iter(|| black_box(s.step())))
        });
    }
    group.finish();

    let model = Stepper::new().model;
    let prompts = &blocks[..8.min(blocks.len())];
    let mut group = c.benchmark_group("lm/transformer_generate");
    group.throughput(Throughput::Elements((prompts.len() * BLOCK) as u64));
    group.sample_size(10);
    for threads in [1, 2] {
        let p = pool(threads);
        let beam = |_: usize, pr: &[u32]| model.beam_search(pr, BLOCK, 5, 3.0).expect("fits");
        continuations(
            &mut group,
            format!("beam5_penalty3_{threads}_thread"),
            &p,
            prompts,
            beam,
        );
    }
    group.finish();
}

/// Bench `name`: every prompt continued by `continue_one(index, prompt)`, in parallel on `p`.
fn continuations(
    group: &mut BenchmarkGroup<WallTime>,
    name: String,
    p: &rayon::ThreadPool,
    prompts: &[Vec<u32>],
    continue_one: impl Fn(usize, &[u32]) -> Vec<u32> + Sync,
) {
    group.bench_function(name, |b| {
        p.install(|| {
            b.iter(|| {
                let out: Vec<Vec<u32>> = prompts
                    .par_iter()
                    .enumerate()
                    .map(|(i, pr)| continue_one(i, pr))
                    .collect();
                black_box(out)
            })
        })
    });
}

/// Our best training tokens/s on one thread over three timed spells.
fn ours(seconds: f64) -> f64 {
    pool(1).install(|| {
        let mut s = Stepper::new();
        common::best_rate(seconds, 2, || (TRAIN_BATCH * SHAPE.context, s.step()))
    })
}

/// The peer's best training tokens/s on one thread.
fn peer() -> Option<f64> {
    common::peer_value(
        "benches/peers/lm_transformer_jax.py",
        &["--config", "default", "--threads", "1"],
        "tokens_per_second_best",
    )
}

/// Rounds of the peer comparison, alternating sides so that a slow spell hits both.
const ROUNDS: usize = 2;

fn compare(skip: bool) {
    if skip {
        return;
    }
    if !common::jax_available() {
        println!("lm peer: JAX is not installed (pip install \"jax[cpu]\"): skipped");
        return;
    }
    for round in 1..=ROUNDS {
        let ours = ours(6.0);
        let Some(theirs) = peer() else {
            return;
        };
        println!(
            "lm transformer training step (16 x 128 tokens, 937,600 parameters), one thread, \
             round {round}: ours {ours:.0} tokens/s, JAX {theirs:.0} tokens/s: {:.2}x",
            ours / theirs
        );
    }
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    // Under `cargo test --all-targets` (no --bench) criterion runs each bench once: a smoke run.
    // A filtered run (`cargo bench --bench lm -- NAME`) skips the peer comparison.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args.iter().any(|a| !a.starts_with('-'));
    compare(!args.iter().any(|a| a == "--bench") || filtered);
}
