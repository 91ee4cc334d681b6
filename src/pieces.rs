//! Shards, checkpoints and merge on the command line (`collapse_sim::shard` does the work).
//!
//! `simulate <process> ... --shard I/N --out FILE` writes shard I's piece file;
//! `--checkpoint DIR [--resume]` saves finished units of chains as they complete and continues
//! from them; `collapse merge FILES... --out RESULT.parquet` rebuilds the run from its pieces,
//! with the bytes of the single run's `--out`.

use anyhow::{Context, Result, bail};
use clap::Args;
use collapse_sim::SimError;
use collapse_sim::shard::{
    self, Assemble, ChainRange, Checkpoint, Layout, PieceRecord, PieceRun, PieceSink, RunHeader,
    ShardError,
};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Options every `simulate` process shares: where the result goes, and how the run is split.
#[derive(Args, Clone, Debug)]
pub(crate) struct RunArgs {
    /// Per-generation statistics as a Parquet file (with --shard: the shard's piece file).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only shard I of N (chains [I R/N, (I+1) R/N)) and write its piece file to --out;
    /// `collapse merge` joins the N files into the single run's result, bit for bit.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Save each finished unit of chains in this folder (atomically); SIGINT/SIGTERM stop at
    /// the next generation boundary with everything saved.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the units saved in --checkpoint (a fresh start if there are none).
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
    /// Aim for a checkpoint about this often (seconds): units of chains are sized to it.
    #[arg(
        long,
        default_value_t = 60.0,
        requires = "checkpoint",
        value_name = "SECONDS"
    )]
    pub checkpoint_every: f64,
}

/// One process ready to run: its spec and config, and how to run, assemble, write and print it.
pub(crate) trait Simulation {
    type Assembler: Assemble<Run = Self::Run>;
    type Run;
    const PROCESS: &'static str;
    const LAYOUT: Layout;
    fn chains(&self) -> u64;
    fn generations(&self) -> u64;
    /// Everything that decides the run's bits (spec, seed, chains, method), as text.
    fn identity(&self) -> String;
    fn threads(&self) -> Option<usize>;
    fn simulate(&self) -> Result<Self::Run, SimError>;
    fn assembler(&self) -> Self::Assembler;
    fn piece(&self, owned: ChainRange, sink: &mut dyn PieceSink) -> Result<Vec<u64>, SimError>;
    fn write(run: &Self::Run, path: &Path) -> Result<()>;
    fn print(run: &Self::Run, json: bool) -> Result<()>;

    /// Checks the spec and config as a run would, without running it: a piece of one chain
    /// whose sink stops it at once.
    fn validate(&self) -> Result<()> {
        struct Stopped;
        impl PieceSink for Stopped {
            fn generation(&mut self, _: u64, _: &[u64], _: &[&[f64]]) {}
            fn stopped(&self) -> bool {
                true
            }
        }
        let one = ChainRange {
            start: 0,
            end: self.chains().min(1),
        };
        match self.piece(one, &mut Stopped) {
            Ok(_) | Err(SimError::Interrupted) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn header(&self) -> RunHeader {
        RunHeader {
            version: env!("CARGO_PKG_VERSION").to_string(),
            process: Self::PROCESS.to_string(),
            identity: self.identity(),
            chains: self.chains(),
            generations: self.generations(),
            layout: Self::LAYOUT,
        }
    }
}

/// Set by SIGINT or SIGTERM while a checkpointed run is going; the signal's number.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn catch_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_usize(sig, &SIGNAL, sig as usize)
            .context("installing a signal handler")?;
        signal_hook::flag::register(sig, &STOP).context("installing a signal handler")?;
    }
    Ok(())
}

/// A run other than an ensemble's stopped by a signal; says what was kept.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {kept}")]
pub(crate) struct Interrupted {
    pub kept: String,
}

// The learned models' commands (`simulate lm`, `simulate vae`): their runs keep per-seed
// checkpoints in --out DIR and are written and printed alike.

/// Options both take, flattened where they stand in each one's help.
#[derive(Args)]
pub(crate) struct ModelRunArgs {
    /// Worker threads (results do not depend on it).
    #[arg(long)]
    pub threads: Option<usize>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Continue the run whose checkpoints are in --out.
    #[arg(long)]
    pub resume: bool,
    /// Least seconds between two checkpoints within a generation (one is always written at
    /// the end of a generation).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub checkpoint_every: f64,
    /// Run only shard I of N of the seeds (seed indices [I S/N, (I+1) S/N)), leaving their
    /// checkpoints in --out; the same command without --shard and with --resume then
    /// assembles the results (one job per shard, e.g. a Slurm array, then one that assembles).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

impl ModelRunArgs {
    /// Checks the options against a run of `seeds` seeds writing to `out`; the shard's seed
    /// indices, if any.
    pub fn check(&self, seeds: usize, out: Option<&Path>) -> Result<Option<Range<usize>>> {
        if self.resume && out.is_none() {
            bail!("invalid --resume: it continues the checkpoints of --out DIR, which is missing");
        }
        if !(self.checkpoint_every.is_finite() && self.checkpoint_every >= 0.0) {
            bail!(
                "invalid --checkpoint-every: must be a finite number of seconds >= 0, got {}",
                self.checkpoint_every
            );
        }
        check_threads_and_out_dir(self.threads, out)?;
        let Some(text) = &self.shard else {
            return Ok(None);
        };
        if out.is_none() {
            bail!("invalid --shard: a shard's seeds are kept in --out DIR, which is missing");
        }
        let (i, n) = parse_shard(text, seeds as u64, "seed")?;
        let range = ChainRange::shard(i, n, seeds as u64);
        Ok(Some(range.start as usize..range.end as usize))
    }

    pub fn checkpoint_every(&self) -> Duration {
        Duration::from_secs_f64(self.checkpoint_every)
    }

    /// Prints what a shard did: its seeds, and how to assemble the whole run.
    pub fn shard_done(&self, process: &str, seeds: &[u64], out: Option<&Path>) -> Result<()> {
        if self.json {
            outln!(
                "{}",
                serde_json::json!({"process": process, "shard": self.shard, "seeds_done": seeds})
            );
            return Ok(());
        }
        let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
        outln!(
            "shard {}: seeds {} done, checkpoints in {}; assemble with the same command without --shard, with --resume",
            self.shard.as_deref().unwrap_or_default(),
            seeds.join(", "),
            out.map(|d| checkpoint_dir(d).display().to_string())
                .unwrap_or_default()
        );
        Ok(())
    }
}

/// `--threads` at least 1 and `--out` a folder or not there yet.
fn check_threads_and_out_dir(threads: Option<usize>, out: Option<&Path>) -> Result<()> {
    if threads == Some(0) {
        bail!("invalid --threads: must be at least 1");
    }
    if let Some(out) = out
        && out.exists()
        && !out.is_dir()
    {
        bail!(
            "invalid --out: {} exists and is not a folder",
            out.display()
        );
    }
    Ok(())
}

/// The run's worker threads: `threads`, or rayon's default count.
pub(crate) fn worker_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("starting the worker threads")
}

/// Where a run with --out DIR keeps its seeds' checkpoints.
pub(crate) fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// The error of a run stopped by SIGINT/SIGTERM (exit 128 + the signal, see
/// [`interrupted_exit_code`]): what its checkpoints keep, `finished` being what they are saved
/// after ("generations", "epochs").
pub(crate) fn interrupted(out: Option<&Path>, finished: &str) -> anyhow::Error {
    let kept = match out {
        Some(d) => format!(
            "the checkpoints in {} keep the finished {finished}; run the same command with --resume to continue",
            checkpoint_dir(d).display()
        ),
        None => "nothing was saved (without --out a run keeps no checkpoints)".into(),
    };
    Interrupted { kept }.into()
}

/// Writes a finished run into --out DIR (if given), then prints it: one JSON object or a table.
pub(crate) fn write_and_print<R, W>(
    run: &R,
    out: Option<&Path>,
    json: bool,
    write: fn(&R, &Path) -> Result<W, collapse_reports::ReportError>,
    to_json: fn(&R) -> serde_json::Value,
    print_table: fn(&R) -> Result<()>,
) -> Result<()> {
    if let Some(out) = out {
        write(run, out).with_context(|| format!("writing the results to {}", out.display()))?;
    }
    if json {
        outln!("{}", serde_json::to_string(&to_json(run))?);
        Ok(())
    } else {
        print_table(run)
    }
}

/// The exit code of a run stopped by a signal: 128 + its number.
pub(crate) fn interrupted_exit_code(e: &anyhow::Error) -> Option<i32> {
    e.chain()
        .any(|c| {
            matches!(
                c.downcast_ref::<ShardError>(),
                Some(ShardError::Interrupted { .. })
            ) || c.downcast_ref::<Interrupted>().is_some()
        })
        .then(|| 128 + SIGNAL.load(Ordering::SeqCst) as i32)
}

/// `I/N` with N >= 1, I < N and at least one chain per shard.
pub(crate) fn parse_shard(text: &str, count: u64, unit: &str) -> Result<(u64, u64)> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?)));
    let Some((i, n)) = parsed else {
        bail!("invalid --shard: '{text}' (expected I/N, e.g. 0/4)");
    };
    if n == 0 || i >= n {
        bail!("invalid --shard: {i}/{n} (needs 0 <= I < N)");
    }
    if n > count {
        bail!("invalid --shard: {n} shards of {count} {unit}s (each shard needs a {unit})");
    }
    Ok((i, n))
}

/// The simulate arguments that decide the run, for a piece's header: the command line
/// without where results go, how the run is split, threads and output format.
pub(crate) fn canonical_command() -> String {
    const SKIP_WITH_VALUE: [&str; 5] = [
        "--out",
        "--shard",
        "--checkpoint",
        "--checkpoint-every",
        "--threads",
    ];
    const SKIP: [&str; 2] = ["--resume", "--json"];
    let mut kept = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let name = a.split('=').next().unwrap_or_default();
        if SKIP.contains(&a.as_str()) {
            continue;
        }
        if SKIP_WITH_VALUE.contains(&name) {
            if !a.contains('=') {
                args.next();
            }
            continue;
        }
        kept.push(a);
    }
    serde_json::to_string(&kept).expect("strings serialise")
}

fn check_out(path: &Path) -> Result<()> {
    crate::check_output_path(path)
}

/// Checks the run options against an ensemble of `chains` chains; the shard, if any.
/// `paths`: also check that --out can be written (not for scripts that create its folder).
pub(crate) fn check_run_args(
    args: &RunArgs,
    chains: u64,
    paths: bool,
) -> Result<Option<(u64, u64)>> {
    if let Some(path) = args.out.as_deref().filter(|_| paths) {
        check_out(path)?;
    }
    if !(args.checkpoint_every.is_finite() && args.checkpoint_every >= 0.0) {
        bail!(
            "invalid --checkpoint-every: {} (expected seconds >= 0)",
            args.checkpoint_every
        );
    }
    let shard = match &args.shard {
        Some(text) => Some(parse_shard(text, chains, "chain")?),
        None => None,
    };
    if shard.is_some() && args.out.is_none() {
        bail!("--shard needs --out FILE (the shard's piece file, for `collapse merge`)");
    }
    Ok(shard)
}

/// Runs a simulate command: plain, as a shard, or checkpointed.
pub(crate) fn simulate<S: Simulation>(sim: &S, args: &RunArgs, json: bool) -> Result<()> {
    let shard = check_run_args(args, sim.chains(), true)?;
    let Some(owned) = (match shard {
        Some((i, n)) => Some(ChainRange::shard(i, n, sim.chains())),
        None => args
            .checkpoint
            .is_some()
            .then(|| ChainRange::all(sim.chains())),
    }) else {
        let run = sim.simulate()?;
        if let Some(path) = &args.out {
            S::write(&run, path)?;
        }
        return S::print(&run, json);
    };
    let header = sim.header();
    let command = canonical_command();
    let mut piece = |o: ChainRange, s: &mut dyn PieceSink| sim.piece(o, s);
    if let (Some((i, n)), true) = (shard, args.resume) {
        // A resubmitted shard whose file is already whole is done (the same run, same chains).
        let path = args.out.as_deref().expect("checked");
        let done = shard::read_file(path)
            .is_ok_and(|r| r.len() == 1 && r[0].run == header && r[0].owned == owned);
        if done {
            eprintln!(
                "collapse: {} already holds shard {i}/{n}; nothing to do",
                path.display()
            );
            return print_shard(i, n, owned, path, json);
        }
    }
    let Some(dir) = &args.checkpoint else {
        // A shard without checkpoints: streamed straight into its file.
        let (i, n) = shard.expect("a shard or a checkpoint");
        let path = args.out.as_deref().expect("checked");
        shard::run_piece_to_file(&header, &command, owned, &STOP, &mut piece, path)?;
        return print_shard(i, n, owned, path, json);
    };
    catch_signals()?;
    let threads = sim
        .threads()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        as u64;
    let cp = Checkpoint {
        dir: dir.clone(),
        every: Duration::from_secs_f64(args.checkpoint_every),
        resume: args.resume,
        min_unit: S::LAYOUT.block * threads,
    };
    // One line per checkpoint on a terminal (the unit's own bar shows its generations).
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = |done: u64, total: u64| {
        if terminal && done > 0 {
            eprintln!(
                "checkpoint: {done} of {total} chains saved in {}",
                dir.display()
            );
        }
    };
    let records = shard::run_checkpointed(
        &header,
        &command,
        owned,
        &cp,
        &STOP,
        &mut piece as &mut PieceRun<'_>,
        &mut progress,
    )?;
    if let Some((i, n)) = shard {
        // Units joined into one record: the file of an uninterrupted shard, byte for byte.
        let path = args.out.as_deref().expect("checked");
        shard::join_to_file(&records, &sim.assembler(), path)?;
        shard::remove_checkpoint(&cp)?;
        return print_shard(i, n, owned, path, json);
    }
    let records = shard::check_set(records)?;
    let run = shard::merge(&records, sim.assembler())?;
    if let Some(path) = &args.out {
        S::write(&run, path)?;
    }
    shard::remove_checkpoint(&cp)?;
    S::print(&run, json)
}

fn print_shard(i: u64, n: u64, owned: ChainRange, path: &Path, json: bool) -> Result<()> {
    if json {
        outln!(
            "{}",
            serde_json::json!({"shard": i, "shards": n, "chains": [owned.start, owned.end], "file": path})
        );
    } else {
        outln!(
            "shard {i}/{n} (chains {owned}) written to {}",
            path.display()
        );
    }
    Ok(())
}

/// `collapse merge`: reads the pieces, checks they make one whole run, rebuilds it.
pub(crate) fn merge(files: &[PathBuf], out: &Path, json: bool) -> Result<()> {
    check_out(out)?;
    if files.is_empty() {
        bail!("no piece files to merge");
    }
    let mut records = Vec::new();
    for f in files {
        records.extend(shard::read_file(f)?);
    }
    let records = shard::check_set(records)?;
    let command: Vec<String> = serde_json::from_str(&records[0].command).with_context(|| {
        format!(
            "{}: its command is not readable (written by another version?)",
            records[0].source.display()
        )
    })?;
    crate::merge_command(&command, &records, out, json)
}

/// The merge of one process: the pieces' command rebuilt `sim`, whose identity must be theirs.
pub(crate) fn merge_as<S: Simulation>(
    sim: &S,
    records: &[PieceRecord],
    out: &Path,
    json: bool,
) -> Result<()> {
    if sim.header() != records[0].run {
        bail!(
            "{}: its command does not rebuild the run it holds (written by another version of collapse?)",
            records[0].source.display()
        );
    }
    let run = shard::merge(records, sim.assembler())?;
    S::write(&run, out)?;
    S::print(&run, json)
}

/// A process's `Simulation`: `$name { spec, config }` over `collapse_sim::$module`'s
/// `simulate`, `simulate_piece`, `Assembler` and `LAYOUT`.
macro_rules! simulation {
    ($name:ident, $module:ident, $spec:ty, $config:ty, $run:ty, $write:path, $print:path) => {
        pub(crate) struct $name {
            pub spec: $spec,
            pub config: $config,
        }

        impl crate::pieces::Simulation for $name {
            type Assembler = collapse_sim::$module::Assembler;
            type Run = $run;
            const PROCESS: &'static str = stringify!($module);
            const LAYOUT: collapse_sim::shard::Layout = collapse_sim::$module::LAYOUT;
            fn chains(&self) -> u64 {
                self.config.chains
            }
            fn generations(&self) -> u64 {
                u64::from(self.spec.generations)
            }
            fn identity(&self) -> String {
                // Threads and progress never change the bits; everything else may.
                let mut config = self.config.clone();
                config.threads = None;
                config.progress = false;
                format!("{:?} {:?}", self.spec, config)
            }
            fn threads(&self) -> Option<usize> {
                self.config.threads
            }
            fn simulate(&self) -> Result<$run, collapse_sim::SimError> {
                collapse_sim::$module::simulate(&self.spec, &self.config)
            }
            fn assembler(&self) -> Self::Assembler {
                collapse_sim::$module::Assembler::new(&self.spec, &self.config)
            }
            fn piece(
                &self,
                owned: collapse_sim::shard::ChainRange,
                sink: &mut dyn collapse_sim::shard::PieceSink,
            ) -> Result<Vec<u64>, collapse_sim::SimError> {
                collapse_sim::$module::simulate_piece(&self.spec, &self.config, owned, sink)
            }
            fn write(run: &$run, path: &std::path::Path) -> anyhow::Result<()> {
                use anyhow::Context as _;
                $write(run, path).with_context(|| format!("writing {}", path.display()))
            }
            fn print(run: &$run, json: bool) -> anyhow::Result<()> {
                $print(run, json)
            }
        }
    };
}
pub(crate) use simulation;

/// `{"mean", "stderr"}`, null where not finite (one seed has no standard error).
pub(crate) fn stat(m: collapse_sim::stats::MeanError) -> serde_json::Value {
    let finite = |v: f64| {
        if v.is_finite() {
            serde_json::json!(v)
        } else {
            serde_json::Value::Null
        }
    };
    serde_json::json!({"mean": finite(m.mean), "stderr": finite(m.stderr)})
}

/// "mean ± stderr" with `digits` decimals, the mean alone where there is no standard error.
pub(crate) fn plus_minus(m: collapse_sim::stats::MeanError, digits: usize) -> String {
    if m.stderr.is_finite() {
        format!("{:.digits$} ± {:.digits$}", m.mean, m.stderr)
    } else {
        format!("{:.digits$}", m.mean)
    }
}
