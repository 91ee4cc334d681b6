//! Benches of the language-model pieces (`collapse_sim::lm`) on the Brown Corpus when it is
//! cached (`collapse data fetch brown`), else on a synthetic corpus (said in the output):
//!
//! - BPE: training a 4,096-token vocabulary on the training documents, and encoding them
//!   (criterion's "elem/s" are bytes/s);
//! - the 3-gram Kneser–Ney fit on 64-token training blocks (tokens/s);
//! - generation: continuing 64 blocks by 64 tokens with 5-beam search and repetition penalty
//!   3.0 (the paper's decoding), and by sampling, on 1 and 2 threads (generated tokens/s).

use collapse_sim::data::{Corpus, Part};
use collapse_sim::lm::bpe::Bpe;
use collapse_sim::lm::ngram::NGram;
use collapse_sim::rng::{ChainRng, stream};
use criterion::{Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;

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
        group.bench_function(format!("beam5_penalty3_{threads}_thread"), |b| {
            p.install(|| {
                b.iter(|| {
                    let out: Vec<Vec<u32>> = prompts
                        .par_iter()
                        .map(|pr| model.beam_search(pr, BLOCK, 5, 3.0))
                        .collect();
                    black_box(out)
                })
            })
        });
        group.bench_function(format!("sample_{threads}_thread"), |b| {
            p.install(|| {
                b.iter(|| {
                    let out: Vec<Vec<u32>> = prompts
                        .par_iter()
                        .enumerate()
                        .map(|(i, pr)| {
                            let mut rng = ChainRng::for_chain(1, stream::TEST, i as u64);
                            model.sample(pr, BLOCK, &mut rng)
                        })
                        .collect();
                    black_box(out)
                })
            })
        });
    }
    group.finish();
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
