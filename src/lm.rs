//! `collapse simulate lm`: language-model generations on a real corpus (`collapse_sim::lm`).

use crate::pieces::{self, plus_minus, stat};
use anyhow::{Result, bail};
use clap::Args;
use collapse_analysis::Strategy;
use collapse_reports::lm::write_run;
use collapse_sim::data;
use collapse_sim::lm::{
    Control, Decode, Event, LmError, LmRun, LmSpec, ModelKind, TransformerSpec,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct LmArgs {
    /// Text corpus (see `collapse data list`): brown or kjv.
    #[arg(long, default_value = "brown")]
    corpus: String,
    /// ngram (interpolated Kneser–Ney, fitted afresh every generation) or transformer (a
    /// base trained once on the real training windows, fine-tuned every generation).
    #[arg(long, default_value = "ngram")]
    model: String,
    /// Order of the n-gram model (1..=4) [default: 3].
    #[arg(long)]
    order: Option<usize>,
    /// Transformer: width of the residual stream [default: 128].
    #[arg(long)]
    width: Option<usize>,
    /// Transformer: layers [default: 2].
    #[arg(long)]
    layers: Option<usize>,
    /// Transformer: attention heads (dividing the width) [default: 4].
    #[arg(long)]
    heads: Option<usize>,
    /// Transformer: epochs of the base over the real training windows [default: 1].
    #[arg(long)]
    base_epochs: Option<usize>,
    /// Transformer: train the base on the first N training windows only [default: all].
    #[arg(long)]
    base_windows: Option<usize>,
    /// Transformer: sequences per training step [default: 16].
    #[arg(long)]
    batch: Option<usize>,
    /// Transformer: peak learning rate of fine-tuning [default: 1e-3].
    #[arg(long)]
    lr: Option<f32>,
    /// Transformer: peak learning rate of the base [default: 2e-3].
    #[arg(long)]
    base_lr: Option<f32>,
    /// Models fitted: generation 0 on the real training blocks, then G - 1 on synthetic ones.
    #[arg(long, default_value_t = 10)]
    generations: usize,
    /// Transformer: fine-tuning epochs per generation (the paper: 5, and 10 with real data
    /// kept) [default: 5]. An n-gram is fitted exactly and refuses it.
    #[arg(long)]
    epochs: Option<usize>,
    /// Keep a fresh random fraction F of the real training blocks in every generation's
    /// training set (the paper's second regime: 0.1); the same as --strategy mix:F.
    #[arg(long)]
    keep_real: Option<f64>,
    /// replace (the paper's first regime), mix:F, keep:F, accumulate or accumulate-subsample.
    #[arg(long)]
    strategy: Option<String>,
    /// beam (the paper: beam search with a repetition penalty) or sample.
    #[arg(long, default_value = "beam")]
    decode: String,
    /// Beams of the beam search.
    #[arg(long, default_value_t = 5)]
    beams: usize,
    /// Repetition penalty of the beam search (log-probabilities of tokens already in the text
    /// are multiplied by it; the authors' code: 3.0).
    #[arg(long, default_value_t = 3.0)]
    repetition_penalty: f64,
    /// Tokens of the byte-level BPE vocabulary.
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    /// Tokens per block and new tokens per continuation (the paper: 64).
    #[arg(long, default_value_t = 64)]
    block: usize,
    /// Use only the first N training blocks (quick runs).
    #[arg(long)]
    blocks: Option<usize>,
    /// Independent runs (seeds S, S + 1, ...).
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// First seed S.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    run: pieces::ModelRunArgs,
    /// Folder for the results (lm.parquet, summary.parquet, perplexities.parquet,
    /// survival.parquet, samples.csv) and the checkpoints (DIR/checkpoints: a transformer's
    /// base, and each seed's, written after every generation and within one).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl LmArgs {
    fn spec(&self) -> Result<LmSpec> {
        let transformer_options = [
            ("--width", self.width.is_some()),
            ("--layers", self.layers.is_some()),
            ("--heads", self.heads.is_some()),
            ("--epochs", self.epochs.is_some()),
            ("--base-epochs", self.base_epochs.is_some()),
            ("--base-windows", self.base_windows.is_some()),
            ("--batch", self.batch.is_some()),
            ("--lr", self.lr.is_some()),
            ("--base-lr", self.base_lr.is_some()),
        ];
        let mut spec = LmSpec::new(&self.corpus, self.order.unwrap_or(3));
        match self.model.as_str() {
            "ngram" => {
                if let Some((option, _)) = transformer_options.iter().find(|o| o.1) {
                    bail!(
                        "invalid {option}: an n-gram model is fitted exactly, it has no such setting ({option} is for --model transformer)"
                    );
                }
            }
            "transformer" => {
                if let Some(order) = self.order {
                    bail!(
                        "invalid --order {order}: it is the n-gram's setting, not the transformer's"
                    );
                }
                let d = TransformerSpec::DEFAULT;
                spec.model = ModelKind::Transformer(TransformerSpec {
                    width: self.width.unwrap_or(d.width),
                    layers: self.layers.unwrap_or(d.layers),
                    heads: self.heads.unwrap_or(d.heads),
                    base_epochs: self.base_epochs.unwrap_or(d.base_epochs),
                    base_windows: self.base_windows.or(d.base_windows),
                    epochs: self.epochs.unwrap_or(d.epochs),
                    batch: self.batch.unwrap_or(d.batch),
                    base_lr: self.base_lr.unwrap_or(d.base_lr),
                    lr: self.lr.unwrap_or(d.lr),
                    weight_decay: d.weight_decay,
                });
            }
            other => bail!("invalid --model '{other}': expected ngram or transformer"),
        }
        spec.strategy = match (&self.keep_real, &self.strategy) {
            (Some(_), Some(_)) => {
                bail!(
                    "invalid --keep-real with --strategy: --keep-real F is --strategy mix:F, give one"
                )
            }
            (Some(f), None) => {
                if !(f.is_finite() && (0.0..=1.0).contains(f)) {
                    bail!("invalid --keep-real {f}: must be a fraction in [0, 1]");
                }
                Strategy::Mix(*f)
            }
            (None, Some(s)) => Strategy::parse(s)?,
            (None, None) => Strategy::Replace,
        };
        spec.decode = match self.decode.as_str() {
            "beam" => Decode::Beam {
                beams: self.beams,
                repetition_penalty: self.repetition_penalty,
            },
            "sample" => Decode::Sample,
            other => bail!("invalid --decode '{other}': expected beam or sample"),
        };
        spec.generations = self.generations;
        spec.vocab_size = self.vocab;
        spec.block = self.block;
        spec.max_blocks = self.blocks;
        spec.seed = self.seed;
        spec.seeds = self.seeds;
        spec.validate()?;
        Ok(spec)
    }
}

pub(crate) fn command(args: LmArgs) -> Result<()> {
    let spec = args.spec()?;
    let out = args.out.as_deref();
    let shard = args.run.check(spec.seeds, out)?;
    if let Some(out) = out
        && !args.run.resume
    {
        // Refused before any work (the run would refuse it after tokenizing).
        for s in shard.clone().unwrap_or(0..spec.seeds) {
            let file =
                pieces::checkpoint_dir(out).join(format!("seed-{}.ckpt", spec.seed + s as u64));
            if file.exists() {
                bail!(
                    "checkpoint {} exists: pass --resume to continue that run, or delete it",
                    file.display()
                );
            }
        }
    }
    let corpus = data::load_corpus(&args.corpus)?;
    let pool = pieces::worker_pool(args.run.threads)?;
    let start = Instant::now();
    // Finished steps on stderr, on a terminal or not (batch logs show how far a run got).
    let mut continued_tenths = 0;
    let mut progress = |e: Event| {
        let t = start.elapsed().as_secs_f64();
        match e {
            Event::Tokenized {
                vocab,
                train_blocks,
                test_blocks,
            } => eprintln!(
                "[{t:>7.1} s] tokenizer: {vocab} tokens; {train_blocks} training and {test_blocks} test blocks"
            ),
            Event::Training {
                seed,
                generation,
                step,
                steps,
                loss,
            } => {
                // Every tenth of a training run, and its last step.
                if step == steps || step % steps.div_ceil(10) == 0 {
                    let who = match seed {
                        None => "base".to_string(),
                        Some(s) => format!("seed {s} generation {generation}"),
                    };
                    eprintln!(
                        "[{t:>7.1} s] {who}: training step {step}/{steps}, loss {loss:.3} nats/token"
                    );
                }
            }
            Event::Continued {
                seed,
                generation,
                done,
                total,
            } => {
                // Every tenth of a synthetic set (batches of prompts cross them).
                let tenths = done * 10 / total;
                if tenths > continued_tenths {
                    eprintln!(
                        "[{t:>7.1} s] seed {seed} generation {generation}: {done}/{total} prompts continued"
                    );
                }
                continued_tenths = if done == total { 0 } else { tenths };
            }
            Event::Generation {
                seed,
                generation,
                test_perplexity,
                surviving_types,
            } => eprintln!(
                "[{t:>7.1} s] seed {seed} generation {generation}: test perplexity {test_perplexity:.2}, {surviving_types} token types in its synthetic data"
            ),
        }
    };
    pieces::catch_signals()?;
    let mut control = Control {
        checkpoint_dir: out.map(pieces::checkpoint_dir),
        resume: args.run.resume,
        checkpoint_every: args.run.checkpoint_every(),
        stop: &pieces::STOP,
        progress: &mut progress,
    };
    let run = match shard {
        Some(seeds) => pool
            .install(|| collapse_sim::lm::simulate_seeds(&corpus, &spec, seeds, &mut control))
            .map(|done| {
                let seeds: Vec<u64> = done.iter().map(|r| r.seed).collect();
                Err(seeds)
            }),
        None => pool
            .install(|| collapse_sim::lm::simulate_with(&corpus, &spec, &mut control))
            .map(Ok),
    };
    let run = match run {
        Ok(Ok(run)) => run,
        Ok(Err(shard_seeds)) => return args.run.shard_done("lm", &shard_seeds, out),
        Err(LmError::Interrupted) => {
            return Err(pieces::interrupted(out, "training steps and continuations"));
        }
        Err(e) => return Err(e.into()),
    };
    pieces::write_and_print(&run, out, args.run.json, write_run, to_json, print_table)
}

fn to_json(run: &LmRun) -> Value {
    let spec = &run.spec;
    let settings = match spec.model {
        ModelKind::Ngram { order } => json!({ "order": order }),
        ModelKind::Transformer(t) => json!({
            "width": t.width,
            "layers": t.layers,
            "heads": t.heads,
            "context": 2 * spec.block,
            "parameters": t.config(run.vocab, spec.block).parameters(),
            "base_epochs": t.base_epochs,
            "base_windows": t.base_windows,
            "epochs": t.epochs,
            "batch": t.batch,
            "base_lr": t.base_lr,
            "lr": t.lr,
            "weight_decay": t.weight_decay,
        }),
    };
    let rows: Vec<Value> = run
        .summary_rows()
        .iter()
        .map(|r| {
            json!({
                "generation": r.generation,
                "test_perplexity": stat(r.test_perplexity),
                "synthetic_perplexity_median": stat(r.synthetic_perplexity_median),
                "synthetic_perplexity_p95": stat(r.synthetic_perplexity_p95),
                "surviving_types": stat(r.surviving_types),
                "distinct_2": stat(r.distinct_2),
                "seq_rep_4": stat(r.seq_rep_4),
            })
        })
        .collect();
    let seeds: Vec<Value> = run
        .seeds
        .iter()
        .map(|s| {
            json!({
                "seed": s.seed,
                "generations": s.generations.iter().map(|g| json!({
                    "generation": g.generation,
                    "test_perplexity": g.test_perplexity,
                    "synthetic_perplexity_median": g.synthetic_perplexity_median,
                    "synthetic_perplexity_p95": g.synthetic_perplexity_p95,
                    "surviving_types": g.surviving_types,
                    "survival_by_rank": g.survival_by_rank,
                    "distinct": g.distinct,
                    "seq_rep_4": g.seq_rep_4,
                    "sample": {"prompt": g.sample_prompt, "continuation": g.sample_continuation},
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "process": "lm",
        "corpus": spec.corpus,
        "model": spec.model.name(),
        "model_settings": settings,
        "vocab": run.vocab,
        "block": spec.block,
        "train_blocks": run.train_blocks,
        "test_blocks": run.test_blocks,
        "train_tokens": run.train_tokens,
        "real_types": run.real_types,
        "strategy": spec.strategy.label(),
        "decode": spec.decode.name(),
        "generations": spec.generations,
        "seed": spec.seed,
        "seeds": spec.seeds,
        "rows": rows,
        "runs": seeds,
    })
}

fn print_table(run: &LmRun) -> Result<()> {
    let spec = &run.spec;
    outln!(
        "lm: {} ({} training blocks of {} tokens, {} test blocks), {}, {} BPE tokens, {} decode, strategy {}, {} seed(s) from {}",
        spec.corpus,
        run.train_blocks,
        spec.block,
        run.test_blocks,
        spec.model.describe(run.vocab, spec.block),
        run.vocab,
        spec.decode.name(),
        spec.strategy.label(),
        spec.seeds,
        spec.seed
    );
    outln!(
        "real data: {} token types; median perplexity of the real blocks under generation 0: {:.2}",
        run.real_types,
        10f64.powf(median(&run.real_log10_perplexity))
    );
    outln!(
        "generation\ttest ppl\tsynthetic ppl median\tp95\tsurviving types\tdistinct-2\tseq-rep-4"
    );
    for r in run.summary_rows() {
        outln!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.generation,
            plus_minus(r.test_perplexity, 2),
            plus_minus(r.synthetic_perplexity_median, 2),
            plus_minus(r.synthetic_perplexity_p95, 2),
            plus_minus(r.surviving_types, 0),
            plus_minus(r.distinct_2, 3),
            plus_minus(r.seq_rep_4, 3)
        );
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
