//! `collapse simulate lm`: language-model generations on a real corpus (`collapse_sim::lm`).

use crate::pieces::stat;
use anyhow::{Context, Result, bail};
use clap::Args;
use collapse_analysis::Strategy;
use collapse_sim::data;
use collapse_sim::lm::{Control, Decode, Event, LmError, LmRun, LmSpec, ModelKind};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct LmArgs {
    /// Text corpus (see `collapse data list`): brown or kjv.
    #[arg(long, default_value = "brown")]
    corpus: String,
    /// ngram (interpolated Kneser–Ney); transformer is not available yet.
    #[arg(long, default_value = "ngram")]
    model: String,
    /// Order of the n-gram model (1..=4).
    #[arg(long, default_value_t = 3)]
    order: usize,
    /// Models fitted: generation 0 on the real training blocks, then G - 1 on synthetic ones.
    #[arg(long, default_value_t = 10)]
    generations: usize,
    /// Fine-tuning epochs per generation (a transformer's setting; an n-gram is fitted
    /// exactly, so it refuses this option).
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
    /// Worker threads (results do not depend on it).
    #[arg(long)]
    threads: Option<usize>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Folder for the results (lm.parquet, summary.parquet, perplexities.parquet,
    /// survival.parquet, samples.csv) and the seeds' checkpoints (DIR/checkpoints, written
    /// after every generation).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run whose checkpoints are in --out.
    #[arg(long)]
    resume: bool,
}

impl LmArgs {
    fn spec(&self) -> Result<LmSpec> {
        match self.model.as_str() {
            "ngram" => {}
            "transformer" => bail!(
                "invalid --model transformer: not available yet in this version (use --model ngram)"
            ),
            other => bail!("invalid --model '{other}': expected ngram or transformer"),
        }
        if let Some(e) = self.epochs {
            bail!(
                "invalid --epochs {e}: an n-gram model is fitted exactly, it has no epochs (--epochs is for --model transformer)"
            );
        }
        let mut spec = LmSpec::new(&self.corpus, self.order);
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
    if args.resume && args.out.is_none() {
        bail!("invalid --resume: it continues the checkpoints of --out DIR, which is missing");
    }
    if args.threads == Some(0) {
        bail!("invalid --threads: must be at least 1");
    }
    if let Some(out) = &args.out
        && out.exists()
        && !out.is_dir()
    {
        bail!(
            "invalid --out: {} exists and is not a folder",
            out.display()
        );
    }
    if let Some(out) = &args.out
        && !args.resume
    {
        // Refused before any work (the run would refuse it after tokenizing).
        for s in 0..spec.seeds as u64 {
            let file = out
                .join("checkpoints")
                .join(format!("seed-{}.ckpt", spec.seed + s));
            if file.exists() {
                bail!(
                    "checkpoint {} exists: pass --resume to continue that run, or delete it",
                    file.display()
                );
            }
        }
    }
    let corpus = data::load_corpus(&args.corpus)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("starting the worker threads")?;
    let start = Instant::now();
    // Finished steps on stderr, on a terminal or not (batch logs show how far a run got).
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
    crate::pieces::catch_signals()?;
    let mut control = Control {
        checkpoint_dir: args.out.as_ref().map(|d| d.join("checkpoints")),
        resume: args.resume,
        stop: &crate::pieces::STOP,
        progress: &mut progress,
    };
    let run = match pool.install(|| collapse_sim::lm::simulate_with(&corpus, &spec, &mut control)) {
        Ok(run) => run,
        Err(LmError::Interrupted) => {
            let kept = match &args.out {
                Some(d) => format!(
                    "the checkpoints in {} keep the finished generations; run the same command with --resume to continue",
                    d.join("checkpoints").display()
                ),
                None => "nothing was saved (without --out a run keeps no checkpoints)".into(),
            };
            return Err(crate::pieces::Interrupted { kept }.into());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(out) = &args.out {
        collapse_reports::lm::write_run(&run, out)
            .with_context(|| format!("writing the results to {}", out.display()))?;
    }
    if args.json {
        outln!("{}", serde_json::to_string(&to_json(&run))?);
    } else {
        print_table(&run)?;
    }
    Ok(())
}

fn to_json(run: &LmRun) -> Value {
    let spec = &run.spec;
    let ModelKind::Ngram { order } = spec.model;
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
        "order": order,
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
    let ModelKind::Ngram { order } = spec.model;
    outln!(
        "lm: {} ({} training blocks of {} tokens, {} test blocks), {}-gram Kneser–Ney, {} BPE tokens, {} decode, strategy {}, {} seed(s) from {}",
        spec.corpus,
        run.train_blocks,
        spec.block,
        run.test_blocks,
        order,
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
    let pm = |m: collapse_sim::stats::MeanError, digits: usize| {
        if m.stderr.is_finite() {
            format!("{:.digits$} ± {:.digits$}", m.mean, m.stderr)
        } else {
            format!("{:.digits$}", m.mean)
        }
    };
    for r in run.summary_rows() {
        outln!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.generation,
            pm(r.test_perplexity, 2),
            pm(r.synthetic_perplexity_median, 2),
            pm(r.synthetic_perplexity_p95, 2),
            pm(r.surviving_types, 0),
            pm(r.distinct_2, 3),
            pm(r.seq_rep_4, 3)
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
