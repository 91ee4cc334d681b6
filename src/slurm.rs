//! `collapse slurm`: writes (and with `--submit` submits) a Slurm job array that runs
//! `collapse simulate` in N shards, and a job that merges the shard files, after every shard
//! succeeded, into the same Parquet table as the plain run's `--out`. Every check happens before
//! anything is written, so bad input leaves no file behind.

use anyhow::{Context, Result, anyhow, bail};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const HELP: &str = "\
Run `collapse simulate` as a Slurm job array of N shards, then merge the shard files into the
Parquet table of the plain run (`collapse simulate ... --out`), byte for byte.

Usage: collapse slurm <PROCESS> <SIMULATE OPTIONS>... --shards <N> [OPTIONS]

Writes into DIR (refused if it already holds shards.sbatch):
  shards.sbatch  array 0..N-1; task I runs `collapse simulate <PROCESS> <SIMULATE OPTIONS>
                 --threads C --shard I/N --out DIR/shards/shard-I.bin
                 --checkpoint DIR/checkpoints/shard-I --resume`
  merge.sbatch   `collapse merge` of the N shard files -> DIR/result.parquet
  submit.sh      submits both; the merge starts after every shard succeeded (afterok)
  resubmit.sh    `resubmit.sh I [I...]` resubmits those shards and a new merge job after them;
                 without indices, the shards whose file is missing
Logs: DIR/logs/shard-I.out and DIR/logs/merge.out. A shard stopped by its time limit, a
preemption or scancel keeps its checkpoint: resubmitting it continues where it stopped.

Options (anywhere on the line; the rest goes to `collapse simulate`):
      --shards <N>         Number of array tasks, 1 <= N <= --chains and N <= 10000 (Slurm's
                           MaxArraySize, 1001 by default, may allow fewer)
      --partition <P>      Slurm partition of every job
      --time <T>           Time limit of every job: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or
                           D-HH:MM:SS
      --cpus-per-task <C>  CPUs of each shard, which runs with --threads C [default: 1]
      --dir <DIR>          Where the scripts, logs, shards and result go
                           [default: slurm-<PROCESS>-seed<SEED>]
      --submit             Submit with sbatch now and print the job ids
  -h, --help               Print help

The scripts set --shard, --out, --checkpoint, --resume and --threads, so they are refused in the
simulate options (use --cpus-per-task for threads). See `collapse simulate <PROCESS> --help`.
";

/// Beyond this the merge's command line (every shard file by name) nears Linux's 2 MB limit;
/// Slurm's own default MaxArraySize allows 1001 tasks.
const MAX_SHARDS: u64 = 10_000;

/// The job's files inside DIR.
const SHARDS: &str = "shards.sbatch";
const MERGE: &str = "merge.sbatch";
const SUBMIT: &str = "submit.sh";
const RESUBMIT: &str = "resubmit.sh";

pub(crate) fn command(args: Vec<String>) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        std::io::stdout().lock().write_all(HELP.as_bytes())?;
        return Ok(());
    }
    let plan = Plan::new(args)?;
    let sbatch = if plan.submit {
        // Looked up before anything is written: no Slurm here means no files either.
        Some(find_on_path("sbatch").ok_or_else(|| {
            anyhow!(
                "--submit: sbatch not found on PATH (without --submit the scripts are only written)"
            )
        })?)
    } else {
        None
    };
    plan.write()?;
    let mut text = plan.summary();
    if let Some(sbatch) = sbatch {
        let (shards, merge) = plan.submit(&sbatch)?;
        writeln!(text, "shards job: {shards}")?;
        writeln!(text, "merge job: {merge}")?;
        writeln!(
            text,
            "follow with: squeue -j {shards},{merge}; the result is {}/result.parquet",
            plan.dir
        )?;
    }
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// A validated `collapse slurm` command line.
struct Plan {
    process: String,
    /// `<process> <simulate options>` as the user gave them.
    simulate: Vec<String>,
    shards: u64,
    partition: Option<String>,
    time: Option<String>,
    cpus_per_task: u32,
    /// Absolute, UTF-8, free of the characters an `#SBATCH` line cannot carry.
    dir: String,
    exe: String,
    submit: bool,
}

/// The slurm options as given, before validation.
#[derive(Default)]
struct Given {
    shards: Option<String>,
    partition: Option<String>,
    time: Option<String>,
    cpus_per_task: Option<String>,
    dir: Option<String>,
    submit: bool,
}

impl Plan {
    fn new(args: Vec<String>) -> Result<Plan> {
        let (given, simulate) = split_options(args)?;
        let process = match simulate.first() {
            Some(p) if !p.starts_with('-') => p.clone(),
            _ => bail!(
                "missing process: collapse slurm <gaussian|markov|mvn|gmm> <simulate options> --shards N"
            ),
        };
        for arg in &simulate[1..] {
            refuse_script_option(arg)?;
        }
        // The command line of shard 0 as the script runs it, so that options which need the
        // script's (--checkpoint-every needs --checkpoint) pass; the paths are not looked at.
        let mut shard0 = simulate.clone();
        shard0.extend(
            [
                "--threads",
                "1",
                "--shard",
                "0/1",
                "--out",
                "shards/shard-0.bin",
                "--checkpoint",
                "checkpoints/shard-0",
                "--resume",
            ]
            .map(String::from),
        );
        crate::validate_simulate(&shard0)?;

        let shards_text = given
            .shards
            .ok_or_else(|| anyhow!("missing --shards N (the number of array tasks)"))?;
        let shards: u64 = shards_text
            .parse()
            .map_err(|_| anyhow!("invalid --shards '{shards_text}': not a whole number"))?;
        if shards == 0 {
            bail!("invalid --shards 0: must be at least 1");
        }
        if shards > MAX_SHARDS {
            bail!(
                "invalid --shards {shards}: at most {MAX_SHARDS} (the merge's command line lists every shard file)"
            );
        }
        let chains: u64 = simulate_value(&simulate, "--chains")
            .ok_or_else(|| anyhow!("missing --chains"))?
            .parse()
            .context("invalid --chains")?;
        if shards > chains {
            bail!(
                "invalid --shards {shards}: more than --chains {chains} (every shard needs a chain)"
            );
        }
        let seed: u64 = simulate_value(&simulate, "--seed")
            .ok_or_else(|| anyhow!("missing --seed"))?
            .parse()
            .context("invalid --seed")?;

        if let Some(t) = &given.time
            && !slurm_time_ok(t)
        {
            bail!(
                "invalid --time '{t}': expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
            );
        }
        if let Some(p) = &given.partition
            && !plain_word(p)
        {
            bail!("invalid --partition '{p}': expected one word of letters, digits, '_', '.', '-'");
        }
        let cpus_per_task = match &given.cpus_per_task {
            None => 1,
            Some(c) => match c.parse::<u32>() {
                Ok(c) if c >= 1 => c,
                _ => bail!("invalid --cpus-per-task '{c}': expected a whole number >= 1"),
            },
        };

        let dir = given
            .dir
            .unwrap_or_else(|| format!("slurm-{process}-seed{seed}"));
        let dir = check_dir(&dir)?;
        let exe = std::env::current_exe().context("locating the collapse binary")?;
        if !exe.is_file() {
            bail!(
                "the running collapse binary {} is gone (rebuilt?); run it again",
                exe.display()
            );
        }
        let exe = exe
            .to_str()
            .ok_or_else(|| anyhow!("the path of the collapse binary is not UTF-8"))?
            .to_string();
        Ok(Plan {
            process,
            simulate,
            shards,
            partition: given.partition,
            time: given.time,
            cpus_per_task,
            dir,
            exe,
            submit: given.submit,
        })
    }

    /// The `#SBATCH` lines every job shares.
    fn common_directives(&self, out: &mut String, log: &str) {
        let d = &self.dir;
        // Append: a resubmitted shard's log keeps the earlier attempts.
        let _ = writeln!(out, "#SBATCH --output={d}/logs/{log}");
        let _ = writeln!(out, "#SBATCH --error={d}/logs/{log}");
        let _ = writeln!(out, "#SBATCH --open-mode=append");
        let _ = writeln!(out, "#SBATCH --chdir={d}");
        if let Some(p) = &self.partition {
            let _ = writeln!(out, "#SBATCH --partition={p}");
        }
        if let Some(t) = &self.time {
            let _ = writeln!(out, "#SBATCH --time={t}");
        }
    }

    fn simulate_line(&self) -> String {
        self.simulate
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn shards_script(&self) -> String {
        let (n, d, p) = (self.shards, &self.dir, &self.process);
        let mut s = String::new();
        let _ = writeln!(s, "#!/bin/bash");
        let _ = writeln!(
            s,
            "# Written by `collapse slurm`: array task I runs shard I of {n} of\n#   collapse simulate {}",
            self.simulate_line()
        );
        let _ = writeln!(s, "#SBATCH --job-name=collapse-{p}-shards");
        let _ = writeln!(s, "#SBATCH --array=0-{}", n - 1);
        let _ = writeln!(s, "#SBATCH --cpus-per-task={}", self.cpus_per_task);
        self.common_directives(&mut s, "shard-%a.out");
        let _ = writeln!(s, "set -eu");
        let _ = writeln!(
            s,
            ": \"${{SLURM_ARRAY_TASK_ID:?is unset: submit {SHARDS} with sbatch, it is an array job}}\""
        );
        let _ = writeln!(
            s,
            "echo \"shard ${{SLURM_ARRAY_TASK_ID}} of {n}: job ${{SLURM_JOB_ID:-}} on $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ)\""
        );
        let checkpoint = format!(
            "{}\"${{SLURM_ARRAY_TASK_ID}}\"",
            quote(&format!("{d}/checkpoints/shard-"))
        );
        let _ = writeln!(s, "mkdir -p {checkpoint}");
        let _ = writeln!(
            s,
            "exec {} simulate {} \\\n  --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\" \\\n  --out {}\"${{SLURM_ARRAY_TASK_ID}}\".bin \\\n  --checkpoint {checkpoint} --resume",
            quote(&self.exe),
            self.simulate_line(),
            quote(&format!("{d}/shards/shard-")),
        );
        s
    }

    fn shard_file(&self, i: u64) -> String {
        format!("{}/shards/shard-{i}.bin", self.dir)
    }

    fn merge_script(&self) -> String {
        let (n, d, p) = (self.shards, &self.dir, &self.process);
        let mut s = String::new();
        let _ = writeln!(s, "#!/bin/bash");
        let _ = writeln!(
            s,
            "# Written by `collapse slurm`: merges the {n} shard files of\n#   collapse simulate {}\n# into {d}/result.parquet, the plain run's --out table.",
            self.simulate_line()
        );
        let _ = writeln!(s, "#SBATCH --job-name=collapse-{p}-merge");
        let _ = writeln!(s, "#SBATCH --cpus-per-task=1");
        self.common_directives(&mut s, "merge.out");
        let _ = writeln!(s, "set -eu");
        let _ = writeln!(
            s,
            "echo \"merge of {n} shards: job ${{SLURM_JOB_ID:-}} on $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ)\""
        );
        let _ = write!(s, "exec {} merge", quote(&self.exe));
        // The files by name, not a glob: a missing shard is then an error, not a smaller merge.
        for i in 0..n {
            let _ = write!(s, " \\\n  {}", quote(&self.shard_file(i)));
        }
        let _ = writeln!(s, " \\\n  --out {}", quote(&format!("{d}/result.parquet")));
        s
    }

    fn submit_script(&self) -> String {
        let n = self.shards;
        format!(
            r#"#!/bin/bash
# Written by `collapse slurm`: submits the {n} shards as one array job, then the merge job,
# which starts once every shard succeeded (afterok).
set -euo pipefail
dir={dir}
shards=$(sbatch --parsable "$dir/{SHARDS}")
shards=${{shards%%;*}}
echo "shards job: $shards"
merge=$(sbatch --parsable --dependency=afterok:"$shards" "$dir/{MERGE}")
merge=${{merge%%;*}}
echo "merge job: $merge"
echo "follow with: squeue -j $shards,$merge; the result is $dir/result.parquet"
"#,
            dir = quote(&self.dir),
        )
    }

    fn resubmit_script(&self) -> String {
        let n = self.shards;
        format!(
            r#"#!/bin/bash
# Written by `collapse slurm`: resubmits shards of the array (a stopped shard continues from its
# checkpoint) and a new merge job that starts once they succeeded.
# Usage: resubmit.sh [I ...]   shard indices in 0-{last}; none: every shard whose file is missing
set -euo pipefail
dir={dir}
n={n}
if [ $# -eq 0 ]; then
  for ((i = 0; i < n; i++)); do
    [ -e "$dir/shards/shard-$i.bin" ] || set -- "$@" "$i"
  done
  if [ $# -eq 0 ]; then
    echo "every shard file exists: nothing to resubmit (the merge alone: sbatch $dir/{MERGE})"
    exit 0
  fi
fi
list=
for i in "$@"; do
  case $i in
    '' | *[!0-9]*) echo "resubmit.sh: '$i' is not a shard index (0-$((n - 1)))" >&2; exit 2 ;;
  esac
  if [ ${{#i}} -gt 9 ] || [ $((10#$i)) -ge "$n" ]; then
    echo "resubmit.sh: shard $i does not exist (0-$((n - 1)))" >&2; exit 2
  fi
  list=${{list:+$list,}}$((10#$i))
done
shards=$(sbatch --parsable --array="$list" "$dir/{SHARDS}")
shards=${{shards%%;*}}
echo "shards job: $shards (tasks $list)"
merge=$(sbatch --parsable --dependency=afterok:"$shards" "$dir/{MERGE}")
merge=${{merge%%;*}}
echo "merge job: $merge"
echo "an earlier merge job that still waits on a failed shard never runs: scancel it"
"#,
            last = n - 1,
            dir = quote(&self.dir),
        )
    }

    /// Creates DIR and its folders and writes the four files, each atomically. On an error
    /// everything created here is removed again.
    fn write(&self) -> Result<()> {
        let mut created: Vec<PathBuf> = Vec::new();
        let result = self.write_into(&mut created);
        if result.is_err() {
            for path in created.iter().rev() {
                if path.is_dir() {
                    let _ = std::fs::remove_dir(path);
                } else {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        result
    }

    fn write_into(&self, created: &mut Vec<PathBuf>) -> Result<()> {
        let dir = Path::new(&self.dir);
        for sub in ["", "logs", "shards", "checkpoints"] {
            let path = dir.join(sub);
            if !path.is_dir() {
                std::fs::create_dir(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                created.push(path);
            }
        }
        let files = [
            (SHARDS, self.shards_script(), 0o644),
            (MERGE, self.merge_script(), 0o644),
            (SUBMIT, self.submit_script(), 0o755),
            (RESUBMIT, self.resubmit_script(), 0o755),
        ];
        for (name, text, mode) in files {
            let path = dir.join(name);
            write_atomic(&path, &text, mode)?;
            created.push(path);
        }
        Ok(())
    }

    fn summary(&self) -> String {
        let d = &self.dir;
        let n = self.shards;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "wrote {d}/{SHARDS}: array 0-{} (shard I of {n} of collapse simulate {})",
            n - 1,
            self.simulate_line()
        );
        let _ = writeln!(
            s,
            "wrote {d}/{MERGE}: collapse merge of the {n} shard files -> {d}/result.parquet"
        );
        let _ = writeln!(
            s,
            "wrote {d}/{SUBMIT}: submits both, the merge after every shard succeeded"
        );
        let _ = writeln!(
            s,
            "wrote {d}/{RESUBMIT}: resubmits shards (default: those without a file) and a new merge"
        );
        let _ = writeln!(s, "logs: {d}/logs/, shard files: {d}/shards/");
        if !self.submit {
            let _ = writeln!(s, "submit: {}", quote(&format!("{d}/{SUBMIT}")));
            let _ = writeln!(
                s,
                "resubmit: {} I [I...] (no I: the shards without a file)",
                quote(&format!("{d}/{RESUBMIT}"))
            );
        }
        s
    }

    /// submit.sh's logic: the array, then the merge after it; returns both job ids.
    fn submit(&self, sbatch: &Path) -> Result<(String, String)> {
        let d = &self.dir;
        let shards = run_sbatch(sbatch, &[&format!("{d}/{SHARDS}")]).with_context(|| {
            format!(
                "nothing submitted (the scripts are written: run {d}/{SUBMIT} when sbatch works)"
            )
        })?;
        let merge = run_sbatch(
            sbatch,
            &[
                &format!("--dependency=afterok:{shards}"),
                &format!("{}/{MERGE}", self.dir),
            ],
        )
        .with_context(|| {
            format!(
                "shards job {shards} was submitted, the merge was not (submit it with: sbatch --dependency=afterok:{shards} {}/{MERGE})",
                self.dir
            )
        })?;
        Ok((shards, merge))
    }
}

/// Pulls the slurm options out of the command line (anywhere in it); the rest is
/// `<process> <simulate options>`.
fn split_options(args: Vec<String>) -> Result<(Given, Vec<String>)> {
    let mut given = Given::default();
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_string(), Some(value)),
            _ => (arg.clone(), None),
        };
        let slot = match name.as_str() {
            "--shards" => &mut given.shards,
            "--partition" => &mut given.partition,
            "--time" => &mut given.time,
            "--cpus-per-task" => &mut given.cpus_per_task,
            "--dir" => &mut given.dir,
            "--submit" => {
                if inline.is_some() {
                    bail!("--submit takes no value");
                }
                if given.submit {
                    bail!("--submit given twice");
                }
                given.submit = true;
                continue;
            }
            _ => {
                rest.push(arg);
                continue;
            }
        };
        if slot.is_some() {
            bail!("{name} given twice");
        }
        let value = match inline {
            Some(v) => v.to_string(),
            None => args.next().ok_or_else(|| anyhow!("{name} needs a value"))?,
        };
        *slot = Some(value);
    }
    Ok((given, rest))
}

/// The options the generated scripts set themselves.
fn refuse_script_option(arg: &str) -> Result<()> {
    let name = arg.split_once('=').map_or(arg, |(name, _)| name);
    let why = match name {
        "--shard" => "the scripts run shard I of --shards N as array task I",
        "--out" => "the shards go to DIR/shards/ and the merged table to DIR/result.parquet",
        "--checkpoint" | "--resume" => {
            "every shard checkpoints to DIR/checkpoints/ and resumes from there"
        }
        "--threads" => "each shard runs with --threads C of --cpus-per-task C",
        _ => return Ok(()),
    };
    bail!("{name} is set by collapse slurm, leave it out: {why}")
}

/// The value of `--name V` or `--name=V` in a simulate command line.
fn simulate_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == name {
            return it.next().map(String::as_str);
        }
        if let Some(value) = arg.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
            return Some(value);
        }
    }
    None
}

/// Slurm's time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
/// days-hours:minutes, days-hours:minutes:seconds; and the two words for no limit.
fn slurm_time_ok(t: &str) -> bool {
    if t.eq_ignore_ascii_case("infinite") || t.eq_ignore_ascii_case("unlimited") {
        return true;
    }
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (days, clock) = match t.split_once('-') {
        Some((d, c)) => (Some(d), c),
        None => (None, t),
    };
    if days.is_some_and(|d| number(d).is_none()) {
        return false;
    }
    let parts: Option<Vec<u64>> = clock.split(':').map(number).collect();
    let Some(parts) = parts else {
        return false;
    };
    // The leading field may exceed 59 (90 minutes, 30 hours); the ones after it may not.
    match parts.len() {
        1 => true,
        2 | 3 => parts[1..].iter().all(|&x| x < 60),
        _ => false,
    }
}

fn plain_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// DIR as an absolute path, checked: its parent exists, it holds no earlier run, and it can be
/// written on an `#SBATCH` line, which sbatch does not read as shell words.
fn check_dir(dir: &str) -> Result<String> {
    if dir.is_empty() {
        bail!("invalid --dir: empty");
    }
    let abs = std::path::absolute(dir).with_context(|| format!("invalid --dir '{dir}'"))?;
    let abs = abs
        .to_str()
        .ok_or_else(|| anyhow!("invalid --dir '{dir}': the absolute path is not UTF-8"))?
        .trim_end_matches('/')
        .to_string();
    if abs.is_empty() {
        bail!("invalid --dir '{dir}': the root folder");
    }
    if abs
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '\\' | '#' | '%'))
    {
        bail!(
            "invalid --dir '{abs}': whitespace, quotes, backslashes, '#' and '%' do not survive #SBATCH lines"
        );
    }
    let path = Path::new(&abs);
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        bail!(
            "invalid --dir '{abs}': folder {} does not exist",
            parent.display()
        );
    }
    if path.exists() && !path.is_dir() {
        bail!("invalid --dir '{abs}': not a folder");
    }
    if path.join(SHARDS).exists() {
        bail!(
            "refusing --dir '{abs}': it already holds {SHARDS} of an earlier run (submit that with {abs}/{SUBMIT}, or choose another --dir)"
        );
    }
    Ok(abs)
}

/// One shell word that bash reads back as `s`: bare when it holds only safe characters, in
/// single quotes with each `'` written as `'\''` otherwise, and as `$'...'` with escapes when it
/// holds a control character, so that a word never spans lines (a newline inside a comment
/// would end the comment).
fn quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-+=/.,:@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    if !s.chars().any(|c| c.is_ascii_control()) {
        return format!("'{}'", s.replace('\'', r"'\''"));
    }
    let mut q = String::from("$'");
    for c in s.chars() {
        match c {
            '\\' => q.push_str(r"\\"),
            '\'' => q.push_str(r"\'"),
            c if c.is_ascii_control() => {
                let _ = write!(q, "\\x{:02x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `sbatch --parsable ARGS`: the job id it prints (`id` or `id;cluster`).
fn run_sbatch(sbatch: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(sbatch)
        .arg("--parsable")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}", sbatch.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {stderr}",
            args.join(" "),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout.trim().split(';').next().unwrap_or("");
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        bail!(
            "sbatch {} printed no job id: '{}'",
            args.join(" "),
            stdout.trim()
        );
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What bash makes of one quoted word.
    fn bash_reads(word: &str) -> String {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s' {word}"))
            .output()
            .expect("bash");
        assert!(out.status.success(), "{word}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoted_words_round_trip_through_bash() {
        for s in [
            "",
            "plain",
            "--samples=20",
            "a b",
            "it's",
            "'",
            "''",
            "\"double\"",
            "$HOME `id` $(id) ${x}",
            "back\\slash",
            "new\nline",
            "tab\there",
            "*?[a]~!#;&|<>(){}",
            "zipf:1.1,list:1,2",
            "ünïcødé",
            "-",
            "a'b\nc\\d",
            "\x01f\x7f\r",
        ] {
            assert_eq!(bash_reads(&quote(s)), s, "{s:?} quoted as {}", quote(s));
            assert!(!quote(s).contains(['\n', '\r']), "{s:?} spans lines");
        }
        assert_eq!(quote("--chains"), "--chains");
    }

    #[test]
    fn slurm_time_formats() {
        for ok in [
            "30",
            "90",
            "30:00",
            "1:00:00",
            "48:00:00",
            "2-0",
            "2-12",
            "1-12:30",
            "1-00:00:00",
            "INFINITE",
            "unlimited",
            "0",
        ] {
            assert!(slurm_time_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "abc",
            "1:2:3:4",
            "10:60",
            "1:60:00",
            "1:00:60",
            "-5",
            "1-",
            "1--2",
            "1-2-3",
            ":30",
            "30:",
            "1h",
            " 30",
            "1e3",
            "9999999999",
        ] {
            assert!(!slurm_time_ok(bad), "{bad}");
        }
    }

    #[test]
    fn slurm_options_come_out_anywhere() {
        let args: Vec<String> = [
            "--shards",
            "4",
            "gaussian",
            "--chains=10",
            "--dir=x",
            "--submit",
            "--seed",
            "1",
            "--time",
            "5",
        ]
        .map(String::from)
        .to_vec();
        let (given, rest) = split_options(args).unwrap();
        assert_eq!(given.shards.as_deref(), Some("4"));
        assert_eq!(given.dir.as_deref(), Some("x"));
        assert_eq!(given.time.as_deref(), Some("5"));
        assert!(given.submit);
        assert_eq!(rest, ["gaussian", "--chains=10", "--seed", "1"]);
        assert_eq!(simulate_value(&rest, "--chains"), Some("10"));
        assert_eq!(simulate_value(&rest, "--seed"), Some("1"));
        assert!(split_options(vec!["--shards".into()]).is_err());
        assert!(split_options(["--dir", "a", "--dir", "b"].map(String::from).to_vec()).is_err());
        assert!(split_options(vec!["--submit=yes".into()]).is_err());
    }

    #[test]
    fn script_options_are_refused() {
        for arg in [
            "--shard",
            "--shard=0/2",
            "--out",
            "--out=x.parquet",
            "--checkpoint",
            "--resume",
            "--threads=2",
        ] {
            assert!(refuse_script_option(arg).is_err(), "{arg}");
        }
        for arg in ["--shards", "--outdir", "--checkpoint-every", "--seed"] {
            assert!(refuse_script_option(arg).is_ok(), "{arg}");
        }
    }
}
