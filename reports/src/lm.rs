//! The language-model experiment on a real corpus (`collapse_sim::lm`): a run's tables.
//!
//! - `lm.parquet`: one row per (seed, generation, metric);
//! - `summary.parquet`: per (generation, metric), the mean and standard error over seeds;
//! - `perplexities.parquet`: log10 per-block perplexity under the generation-0 model, of the
//!   real training blocks (generation null) and of each generation's synthetic blocks (the
//!   paper's histograms);
//! - `survival.parquet`: per (seed, generation, rank bin), the fraction of the real token types
//!   of that tenth of the frequency ranking that occur in the synthetic data;
//! - `samples.csv`: each generation's first continuation with its prompt.

use crate::ReportError;
use crate::figure::{Curve, CurveKind, Figure, band};
use crate::report::Scale;
use crate::section::{Block, Section, TextTable, render_figures};
use crate::table::{io_err, mean_se, moved, sig, write_atomic, write_parquet};
use collapse_analysis::strategy::Strategy;
use collapse_sim::data::Corpus;
use collapse_sim::lm::{
    Event, GenerationMetrics, LmRun, LmSpec, ModelKind, RANK_BINS, TransformerSpec, simulate,
};
use collapse_sim::stats::MeanError;
use polars::prelude::*;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// The scalar metrics of a generation, in table order.
fn scalars(m: &GenerationMetrics) -> [(&'static str, f64); 9] {
    [
        ("test_perplexity", m.test_perplexity),
        ("synthetic_perplexity_median", m.synthetic_perplexity_median),
        ("synthetic_perplexity_p95", m.synthetic_perplexity_p95),
        ("surviving_types", m.surviving_types as f64),
        ("distinct_1", m.distinct[0]),
        ("distinct_2", m.distinct[1]),
        ("distinct_3", m.distinct[2]),
        ("distinct_4", m.distinct[3]),
        ("seq_rep_4", m.seq_rep_4),
    ]
}

fn long_frame(run: &LmRun) -> Result<DataFrame, ReportError> {
    crate::table::long_frame(run.seeds.iter().flat_map(|s| {
        s.generations
            .iter()
            .flat_map(move |m| scalars(m).map(|(name, v)| (s.seed, m.generation as u64, name, v)))
    }))
}

fn summary_frame(run: &LmRun) -> Result<DataFrame, ReportError> {
    let mut rows = Vec::new();
    for g in 0..run.spec.generations {
        let per_seed: Vec<[(&str, f64); 9]> = run
            .seeds
            .iter()
            .map(|s| scalars(&s.generations[g]))
            .collect();
        for i in 0..9 {
            let values: Vec<f64> = per_seed.iter().map(|v| v[i].1).collect();
            rows.push((
                g as u64,
                per_seed[0][i].0.to_string(),
                MeanError::of(&values),
            ));
        }
    }
    crate::table::summary_frame(rows)
}

fn perplexity_frame(run: &LmRun) -> Result<DataFrame, ReportError> {
    let (mut seed, mut generation, mut log10) = (vec![], vec![], vec![]);
    for &v in &run.real_log10_perplexity {
        seed.push(None);
        generation.push(None);
        log10.push(v);
    }
    for s in &run.seeds {
        for m in &s.generations {
            for &v in &m.synthetic_log10_perplexity {
                seed.push(Some(s.seed));
                generation.push(Some(m.generation as u64));
                log10.push(v);
            }
        }
    }
    Ok(DataFrame::new(
        seed.len(),
        vec![
            Column::new("seed".into(), seed),
            Column::new("generation".into(), generation),
            Column::new("log10_perplexity".into(), log10),
        ],
    )?)
}

fn survival_frame(run: &LmRun) -> Result<DataFrame, ReportError> {
    let rows = run.seeds.iter().flat_map(|s| {
        s.generations.iter().flat_map(move |m| {
            let g = m.generation as u64;
            (0u64..)
                .zip(&m.survival_by_rank)
                .map(move |(b, &f)| (s.seed, g, b, f))
        })
    });
    crate::table::four_columns(
        ["seed", "generation", "rank_tenth", "surviving_fraction"],
        rows,
    )
}

/// A CSV field, quoted.
fn csv_field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Writes a run's tables into `dir` (created if needed), each file atomically.
pub fn write_run(run: &LmRun, dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    write_parquet(&mut long_frame(run)?, &dir.join("lm.parquet"))?;
    write_parquet(&mut summary_frame(run)?, &dir.join("summary.parquet"))?;
    write_parquet(
        &mut perplexity_frame(run)?,
        &dir.join("perplexities.parquet"),
    )?;
    write_parquet(&mut survival_frame(run)?, &dir.join("survival.parquet"))?;
    let mut csv = String::from("seed,generation,prompt,continuation\n");
    for s in &run.seeds {
        for m in &s.generations {
            csv.push_str(&format!(
                "{},{},{},{}\n",
                s.seed,
                m.generation,
                csv_field(&m.sample_prompt),
                csv_field(&m.sample_continuation)
            ));
        }
    }
    let samples = dir.join("samples.csv");
    write_atomic(&samples, |w| {
        w.write_all(csv.as_bytes()).map_err(io_err(&samples))
    })
}

// ---------------------------------------------------------------------------------------------
// The report section

/// The corpus of the section.
pub const CORPUS: &str = "brown";

/// The two regimes of the paper, as strategies: no original data, and a fresh random 10% of it.
pub const REGIMES: [(&str, Strategy); 2] = [
    ("no real data (replace)", Strategy::Replace),
    ("10% real data kept (mix:0.1)", Strategy::Mix(0.1)),
];

/// The models of the report, each with its own section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportModel {
    Ngram,
    Transformer,
}

impl ReportModel {
    /// The section's folder under the report.
    pub fn dir(&self) -> &'static str {
        match self {
            ReportModel::Ngram => "lm",
            ReportModel::Transformer => "lm-transformer",
        }
    }
}

/// The run of a scale under `strategy` with `model`.
pub fn spec(scale: Scale, seed: u64, strategy: Strategy, model: ReportModel) -> LmSpec {
    match model {
        ReportModel::Ngram => ngram_spec(scale, seed, strategy),
        ReportModel::Transformer => transformer_spec(scale, seed, strategy),
    }
}

/// The transformer's run: the paper's epochs (5 with no real data, 10 with 10% kept); at the
/// default scale a smaller model (width 64) on 1,024 tokens, its base on 2,000 windows and
/// fine-tuning on 300 blocks, 4 generations, so that the report still takes minutes.
pub fn transformer_spec(scale: Scale, seed: u64, strategy: Strategy) -> LmSpec {
    let mut spec = LmSpec::new(CORPUS, 3);
    spec.seed = seed;
    spec.strategy = strategy;
    let mut t = TransformerSpec::DEFAULT;
    t.epochs = if strategy == Strategy::Replace { 5 } else { 10 };
    match scale {
        Scale::Smoke => {
            spec.vocab_size = 512;
            spec.generations = 2;
            spec.max_blocks = Some(48);
            spec.seeds = 2;
            t.width = 32;
            t.layers = 1;
            t.heads = 2;
            t.base_epochs = 1;
            t.base_windows = Some(48);
            t.epochs = 1;
        }
        Scale::Default => {
            spec.vocab_size = 1024;
            spec.generations = 4;
            spec.max_blocks = Some(TRANSFORMER_DEFAULT_BLOCKS);
            spec.seeds = 2;
            t.width = 64;
            t.heads = 2;
            t.base_windows = Some(TRANSFORMER_DEFAULT_WINDOWS);
        }
        Scale::Paper => {
            spec.generations = 10;
            spec.seeds = 5;
        }
    }
    spec.model = ModelKind::Transformer(t);
    spec
}

/// Training blocks of the transformer at the default scale.
pub const TRANSFORMER_DEFAULT_BLOCKS: usize = 300;
/// Training windows of the transformer's base at the default scale (of about 10,600).
pub const TRANSFORMER_DEFAULT_WINDOWS: usize = 2000;

fn ngram_spec(scale: Scale, seed: u64, strategy: Strategy) -> LmSpec {
    let mut spec = LmSpec::new(CORPUS, 3);
    spec.seed = seed;
    spec.strategy = strategy;
    match scale {
        Scale::Smoke => {
            spec.vocab_size = 1024;
            spec.generations = 3;
            spec.max_blocks = Some(300);
            spec.seeds = 2;
        }
        Scale::Default => {
            spec.generations = 10;
            spec.max_blocks = Some(DEFAULT_BLOCKS);
            spec.seeds = 3;
        }
        Scale::Paper => {
            spec.generations = 10;
            spec.seeds = 5;
        }
    }
    spec
}

/// Training blocks used at the default scale (of 21,297: the whole report must take minutes).
pub const DEFAULT_BLOCKS: usize = 8000;

/// The corpus, loaded before any experiment runs so that a missing corpus fails the report at
/// once (the loader's message names `collapse data fetch brown`).
pub fn corpus() -> Result<Corpus, ReportError> {
    collapse_sim::data::load_corpus(CORPUS)
        .map_err(|e| ReportError::Invalid(format!("lm section: {e}")))
}

/// Histogram of log10 perplexities on fixed bins: (bin centres, fraction of blocks per bin
/// width, so that areas compare between sets of different sizes).
fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> (Vec<f64>, Vec<f64>) {
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values {
        let b = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let n = values.len().max(1) as f64;
    (
        (0..bins).map(|b| lo + (b as f64 + 0.5) * width).collect(),
        counts.iter().map(|&c| c as f64 / n / width).collect(),
    )
}

fn series(label: String, x: Vec<f64>, y: Vec<f64>, colour: usize) -> Curve {
    Curve {
        label,
        x,
        y,
        kind: CurveKind::TheoryFor(colour),
    }
}

/// Generations shown in the histograms: 0, 1, the middle one and the last.
fn shown_generations(generations: usize) -> Vec<usize> {
    let mut g = vec![0, 1, generations / 2, generations - 1];
    g.retain(|&x| x < generations);
    g.dedup();
    g
}

fn figures(runs: &[(&str, LmRun)]) -> Vec<(String, Figure)> {
    let generations = runs[0].1.spec.generations;
    let seeds = runs[0].1.seeds.len();
    let mut out = Vec::new();
    let drift =
        |title: &str, y_label: &str, log_y: bool, f: &dyn Fn(&GenerationMetrics) -> f64| Figure {
            title: title.into(),
            x_label: "generation".into(),
            y_label: y_label.into(),
            log_y,
            curves: runs
                .iter()
                .map(|(name, run)| {
                    band(
                        &format!("{name}: mean ± 2 s.e. over {seeds} seeds"),
                        &run.summary(f),
                    )
                })
                .collect(),
        };
    out.push((
        "lm-test-perplexity".to_string(),
        drift(
            "Perplexity of the real test blocks",
            "perplexity",
            true,
            &|g| g.test_perplexity,
        ),
    ));
    out.push((
        "lm-surviving-types".to_string(),
        drift(
            "Token types of the real data still in the synthetic data",
            "types",
            false,
            &|g| g.surviving_types as f64,
        ),
    ));
    out.push((
        "lm-synthetic-p95".to_string(),
        drift(
            "95th percentile of the synthetic blocks' perplexity (generation-0 model)",
            "perplexity",
            true,
            &|g| g.synthetic_perplexity_p95,
        ),
    ));
    // Histograms on common bins over every value shown.
    let shown = shown_generations(generations);
    for (i, (_, run)) in runs.iter().enumerate() {
        let first = &run.seeds[0];
        let sets: Vec<(String, &[f64])> = std::iter::once((
            "real training blocks".to_string(),
            run.real_log10_perplexity.as_slice(),
        ))
        .chain(shown.iter().map(|&g| {
            (
                format!("generation {g}"),
                first.generations[g].synthetic_log10_perplexity.as_slice(),
            )
        }))
        .collect();
        let all = sets.iter().flat_map(|s| s.1.iter().copied());
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        };
        let curves = sets
            .into_iter()
            .enumerate()
            .map(|(k, (label, values))| {
                let (x, y) = histogram(values, lo, hi, HISTOGRAM_BINS);
                series(label, x, y, k)
            })
            .collect();
        out.push((
            format!("lm-perplexity-histogram-{i}"),
            Figure {
                title: format!(
                    "Block perplexity under generation 0, {} (seed {})",
                    run.spec.strategy.label(),
                    first.seed
                ),
                x_label: "log10 perplexity".into(),
                y_label: "density of blocks".into(),
                log_y: false,
                curves,
            },
        ));
    }
    // Survival by frequency rank, first regime, first seed.
    let (name, run) = &runs[0];
    let first = &run.seeds[0];
    let x: Vec<f64> = (1..=RANK_BINS).map(|b| b as f64).collect();
    out.push((
        "lm-survival-by-rank".to_string(),
        Figure {
            title: format!(
                "Surviving token types by real frequency, {name} (seed {})",
                first.seed
            ),
            x_label: "tenth of the types ranked by real frequency (1: most frequent)".into(),
            y_label: "fraction in the synthetic data".into(),
            log_y: false,
            curves: shown
                .iter()
                .enumerate()
                .map(|(k, &g)| {
                    series(
                        format!("generation {g}"),
                        x.clone(),
                        first.generations[g].survival_by_rank.clone(),
                        k,
                    )
                })
                .collect(),
        },
    ));
    out
}

/// One sentence per regime: how the headline metrics moved from the first generation to the
/// last (first seed's values for the percentile; means over seeds otherwise).
fn outcome(name: &str, run: &LmRun) -> String {
    let rows = run.summary_rows();
    let (a, b) = (&rows[0], &rows[rows.len() - 1]);
    let last = b.generation;
    format!(
        "{name}: from generation 0 to {last} the test perplexity {} from {} to {}, the token types of the real data in the synthetic data {} from {} to {}, and the synthetic blocks' median perplexity under the generation-0 model {} from {} to {} (95th percentile {} to {}).",
        moved(a.test_perplexity.mean, b.test_perplexity.mean),
        sig(a.test_perplexity.mean, 4),
        sig(b.test_perplexity.mean, 4),
        moved(a.surviving_types.mean, b.surviving_types.mean),
        sig(a.surviving_types.mean, 4),
        sig(b.surviving_types.mean, 4),
        moved(
            a.synthetic_perplexity_median.mean,
            b.synthetic_perplexity_median.mean
        ),
        sig(a.synthetic_perplexity_median.mean, 3),
        sig(b.synthetic_perplexity_median.mean, 3),
        sig(a.synthetic_perplexity_p95.mean, 3),
        sig(b.synthetic_perplexity_p95.mean, 3),
    )
}

/// Bins of the perplexity histograms.
const HISTOGRAM_BINS: usize = 40;

fn summary_table(runs: &[(&str, LmRun)]) -> TextTable {
    let header = [
        "regime",
        "generation",
        "test perplexity",
        "synthetic perplexity: median",
        "95th percentile",
        "surviving types",
        "distinct-2",
        "seq-rep-4",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for (name, run) in runs {
        for r in run.summary_rows() {
            rows.push(vec![
                name.to_string(),
                r.generation.to_string(),
                mean_se(r.test_perplexity),
                mean_se(r.synthetic_perplexity_median),
                mean_se(r.synthetic_perplexity_p95),
                mean_se(r.surviving_types),
                mean_se(r.distinct_2),
                mean_se(r.seq_rep_4),
            ]);
        }
    }
    TextTable { header, rows }
}

pub const INTRO: &str = "The paper's language-model experiment at a size a CPU runs: a model of the Brown Corpus (1961 American English, 500 documents, split 80/10/10 by document), tokenized by a byte-level BPE trained on the training documents and cut into 64-token blocks. Generation 0 is fitted to the real training blocks; every later generation is fitted afresh to continuations of the real training blocks generated by the previous one (64 new tokens per block by 5-beam search with repetition penalty 3.0, as the paper's code), with no real data, or with a fresh random 10% of the real blocks. The model is an interpolated Kneser–Ney 3-gram, the bridge to the Markov chain of the theory: a token absent from one generation's synthetic data keeps only the smoothing's mass in the next. Measured: the perplexity of the real test blocks, the perplexity of each synthetic block under the generation-0 model (the paper's histograms), and how many token types of the real data still occur.";

pub const TRANSFORMER_INTRO: &str = "The same experiment with a small decoder-only transformer (GPT-2's pre-norm layout, written by hand with every gradient checked against finite differences), keeping the paper's protocol: a base model is trained once on the real training text (windows of two consecutive blocks); generation 0 is the base fine-tuned on the real training blocks, and every later generation starts again from the base and is fine-tuned on the previous generation's continuations of the real training blocks (5-beam search, repetition penalty 3.0, KV-cached): 5 epochs with no real data, 10 epochs with a fresh random 10% of the real blocks kept, as in the paper. Each seed fine-tunes the same base in its own order.";

/// Runs the language-model experiment of `scale` with `model` on `corpus` (both regimes)
/// and writes `<out>/<model dir>/`: each regime's tables in its own folder and the figures.
pub fn section(
    scale: Scale,
    corpus: &Corpus,
    out_dir: &Path,
    seed: u64,
    model: ReportModel,
) -> Result<Section, ReportError> {
    let start = Instant::now();
    let dir = out_dir.join(model.dir());
    crate::report::create_dir(&dir)?;
    let mut runs = Vec::new();
    let mut files = Vec::new();
    for (name, strategy) in REGIMES {
        let spec = spec(scale, seed, strategy, model);
        eprintln!(
            "collapse report: running lm, {name} ({} seeds x {} generations, {} training blocks) ...",
            spec.seeds,
            spec.generations,
            spec.max_blocks.map_or("all".to_string(), |b| b.to_string())
        );
        let mut progress = |e: Event| {
            if let Event::Training {
                seed: None,
                step,
                steps,
                loss,
                ..
            } = e
                && step == steps
            {
                eprintln!(
                    "collapse report: lm {} base trained ({steps} steps, last loss {} nats/token)",
                    strategy.label(),
                    sig(loss, 3)
                );
            }
            if let Event::Generation {
                seed,
                generation,
                test_perplexity,
                surviving_types,
            } = e
            {
                eprintln!(
                    "collapse report: lm {} seed {seed} generation {generation}: test perplexity {}, {surviving_types} types",
                    strategy.label(),
                    sig(test_perplexity, 4)
                );
            }
        };
        let run = simulate(corpus, &spec, &mut progress)?;
        let sub = strategy.name();
        write_run(&run, &dir.join(sub))?;
        for f in [
            "lm.parquet",
            "summary.parquet",
            "perplexities.parquet",
            "survival.parquet",
            "samples.csv",
        ] {
            files.push(format!("{sub}/{f}"));
        }
        runs.push((name, run));
    }
    let first = &runs[0].1;
    let last = first.spec.generations - 1;
    let sample = |run: &LmRun, g: usize| {
        let m = &run.seeds[0].generations[g];
        format!(
            "“{}” → “{}”",
            m.sample_prompt.trim(),
            m.sample_continuation.trim()
        )
    };
    let blocks = vec![
        Block {
            name: "Perplexity drift, tails and lost types".into(),
            text: format!(
                "{} training blocks of {} tokens ({} BPE tokens, {} token types in the training blocks), {} test blocks; {}; {} generations, {} seeds{}. {}",
                first.train_blocks,
                first.spec.block,
                first.vocab,
                first.real_types,
                first.test_blocks,
                first.spec.model.describe(first.vocab, first.spec.block),
                first.spec.generations,
                first.spec.seeds,
                match model {
                    ReportModel::Ngram =>
                        " (beam search is deterministic: with no real data every seed gives the same run, and the seeds differ through the 10% drawn)",
                    ReportModel::Transformer =>
                        " (the seeds differ in their fine-tuning order and, with real data kept, in the 10% drawn)",
                },
                runs.iter()
                    .map(|(name, run)| outcome(name, run))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            text_table: Some(summary_table(&runs)),
            rows: Vec::new(),
            figures: render_figures(&dir, figures(&runs))?,
        },
        Block {
            name: "Samples".into(),
            text: format!(
                "The first training block's continuation, seed {}, no real data. Generation 0: {}\n\nGeneration {last}: {}\n\nEvery generation's sample is in `{}/<regime>/samples.csv`.",
                first.seeds[0].seed,
                sample(first, 0),
                sample(first, last),
                model.dir()
            ),
            text_table: None,
            rows: Vec::new(),
            figures: Vec::new(),
        },
    ];
    let (title, intro) = match model {
        ReportModel::Ngram => ("Language models on a real corpus (lm)", INTRO),
        ReportModel::Transformer => (
            "Language models on a real corpus: a transformer (lm)",
            TRANSFORMER_INTRO,
        ),
    };
    Ok(Section {
        dir: model.dir().into(),
        title: title.into(),
        intro: intro.into(),
        files,
        blocks,
        experiments: REGIMES.len(),
        comparisons: 0,
        worst_z: 0.0,
        seconds: start.elapsed().as_secs_f64(),
    })
}
