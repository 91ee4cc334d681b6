//! `collapse slurm` without a Slurm cluster: the generated scripts (array range, shard command
//! line, merge dependency, quoting that survives bash), `--submit` against a fake `sbatch`, and
//! bad input (one line on stderr, exit code 2, nothing written). `tests/slurm/integration.sh`
//! runs the same scripts on a real one-node cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // Under the target folder, so that the binary can be hard-linked into it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "slurm-test-{}-{tag}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `collapse slurm ARGS` in folder `cwd`, with `path` as PATH when given.
fn slurm_in(cwd: &Path, args: &[&str], path: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_collapse"));
    cmd.arg("slurm").args(args).current_dir(cwd);
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    cmd.output().expect("run collapse")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bash_syntax_ok(script: &Path) {
    let out = Command::new("bash")
        .arg("-n")
        .arg(script)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

const SIMULATE: [&str; 9] = [
    "gaussian",
    "--samples",
    "20",
    "--generations",
    "5",
    "--chains",
    "100",
    "--seed",
    "7",
];

const FILES: [&str; 4] = ["shards.sbatch", "merge.sbatch", "submit.sh", "resubmit.sh"];

#[test]
fn scripts_hold_the_array_the_shard_command_and_the_merge_dependency() {
    let tmp = scratch_dir("scripts");
    let mut args = SIMULATE.to_vec();
    args.extend([
        "--shards",
        "4",
        "--dir",
        "run",
        "--time",
        "1-02:00:00",
        "--partition",
        "debug",
        "--cpus-per-task",
        "2",
        // Valid only beside the script's --checkpoint.
        "--checkpoint-every",
        "5",
    ]);
    let stdout = ok(&slurm_in(&tmp, &args, None));
    // DIR is written as an absolute path.
    let dir = tmp.join("run");
    let d = dir.to_str().unwrap();
    for name in FILES {
        assert!(stdout.contains(&format!("{d}/{name}")), "{stdout}");
        bash_syntax_ok(&dir.join(name));
    }
    for sub in ["logs", "shards", "checkpoints"] {
        assert!(dir.join(sub).is_dir(), "{sub}");
    }

    let shards = read(dir.join("shards.sbatch"));
    for line in [
        "#SBATCH --array=0-3".to_string(),
        "#SBATCH --job-name=collapse-gaussian-shards".into(),
        "#SBATCH --cpus-per-task=2".into(),
        "#SBATCH --partition=debug".into(),
        "#SBATCH --time=1-02:00:00".into(),
        format!("#SBATCH --output={d}/logs/shard-%a.out"),
        format!("#SBATCH --error={d}/logs/shard-%a.out"),
    ] {
        assert!(shards.lines().any(|l| l == line), "{line} in\n{shards}");
    }
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_collapse")).unwrap();
    for part in [
        format!(
            "exec {} simulate gaussian --samples 20 --generations 5 --chains 100 --seed 7",
            exe.display()
        ),
        "--seed 7 --checkpoint-every 5 \\\n".into(),
        "--threads \"${SLURM_CPUS_PER_TASK:-1}\" --shard \"${SLURM_ARRAY_TASK_ID}/4\"".into(),
        format!("--out {d}/shards/shard-\"${{SLURM_ARRAY_TASK_ID}}\".bin"),
        format!("--checkpoint {d}/checkpoints/shard-\"${{SLURM_ARRAY_TASK_ID}}\" --resume"),
    ] {
        assert!(shards.contains(&part), "{part} in\n{shards}");
    }
    // sbatch reads #SBATCH lines only before the first command.
    let first_command = shards
        .lines()
        .position(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert!(
        shards
            .lines()
            .skip(first_command)
            .all(|l| !l.starts_with("#SBATCH"))
    );

    let merge = read(dir.join("merge.sbatch"));
    assert!(merge.contains("#SBATCH --job-name=collapse-gaussian-merge"));
    assert!(merge.contains(&format!("#SBATCH --output={d}/logs/merge.out")));
    for i in 0..4 {
        assert!(
            merge.contains(&format!("{d}/shards/shard-{i}.bin")),
            "{merge}"
        );
    }
    assert!(!merge.contains(&format!("{d}/shards/shard-4.bin")));
    assert!(
        !merge.contains('*'),
        "the shard files are listed, not globbed"
    );
    assert!(merge.contains(&format!("merge \\\n  {d}/shards/shard-0.bin")));
    assert!(merge.contains(&format!("--out {d}/result.parquet")));

    let submit = read(dir.join("submit.sh"));
    assert!(submit.contains("sbatch --parsable \"$dir/shards.sbatch\""));
    assert!(
        submit.contains("sbatch --parsable --dependency=afterok:\"$shards\" \"$dir/merge.sbatch\"")
    );
    let resubmit = read(dir.join("resubmit.sh"));
    assert!(resubmit.contains("--array=\"$list\""));

    use std::os::unix::fs::PermissionsExt as _;
    for (name, executable) in [
        ("submit.sh", true),
        ("resubmit.sh", true),
        ("shards.sbatch", false),
    ] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o100 != 0, executable, "{name}: {mode:o}");
    }
    // No temporary file is left beside them.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn default_dir_options_anywhere_and_no_second_run_in_one_dir() {
    let tmp = scratch_dir("default");
    let args = [
        "--shards=3",
        "gaussian",
        "--samples",
        "20",
        "--cpus-per-task=1",
        "--generations",
        "5",
        "--chains",
        "3",
        "--seed",
        "42",
    ];
    ok(&slurm_in(&tmp, &args, None));
    let dir = tmp.join("slurm-gaussian-seed42");
    let shards = read(dir.join("shards.sbatch"));
    assert!(shards.contains("#SBATCH --array=0-2"));
    assert!(shards.contains("--shard \"${SLURM_ARRAY_TASK_ID}/3\""));
    assert!(!shards.contains("--partition") && !shards.contains("--time"));
    assert!(shards.contains("#SBATCH --cpus-per-task=1"));

    // The same folder again: refused, and the first run's files stay as they were.
    let before: Vec<String> = FILES.iter().map(|f| read(dir.join(f))).collect();
    let out = slurm_in(&tmp, &args, None);
    assert_refused(&out, "second run in one folder");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shards.sbatch"));
    let after: Vec<String> = FILES.iter().map(|f| read(dir.join(f))).collect();
    assert_eq!(before, after);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The binary in a folder whose name needs quoting (spaces, quotes, `$`, backquotes), and a
/// simulate value with spaces: the scripts, run by bash, hand the binary exactly the words.
#[test]
fn quoted_paths_and_values_round_trip_through_bash() {
    let tmp = scratch_dir("quoting");
    let odd = tmp.join("it's a \"bin\" $HOME `id`");
    std::fs::create_dir(&odd).unwrap();
    let exe = odd.join("collapse");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_collapse"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_collapse"), &exe).unwrap();
    }
    // DIR may not hold whitespace or quotes (#SBATCH lines cannot quote), but other shell
    // syntax is fine.
    let dir = tmp.join("run$x`y`;&()");
    let d = dir.to_str().unwrap();
    let out = Command::new(&exe)
        .args([
            "slurm",
            "gaussian",
            "--samples",
            "20",
            "--schedule",
            "power: 0.5",
            "--generations",
            "5",
            "--chains",
            "10",
            "--seed",
            "3",
            "--shards",
            "4",
            "--dir",
            d,
        ])
        .output()
        .unwrap();
    ok(&out);
    for name in FILES {
        bash_syntax_ok(&dir.join(name));
    }

    // Now a stand-in binary that records its arguments, one per NUL. Unlink first: the path
    // may be a hard link to the real binary.
    std::fs::remove_file(&exe).unwrap();
    std::fs::write(&exe, "#!/bin/bash\nprintf '%s\\0' \"$@\" > \"$RECORD\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let record = tmp.join("args");
    let recorded = |script: &str| -> Vec<String> {
        let out = Command::new("bash")
            .arg(dir.join(script))
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_CPUS_PER_TASK", "3")
            .env("RECORD", &record)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = read(&record);
        text.strip_suffix('\0')
            .unwrap()
            .split('\0')
            .map(String::from)
            .collect()
    };
    let shard = recorded("shards.sbatch");
    let mut expected: Vec<String> = [
        "simulate",
        "gaussian",
        "--samples",
        "20",
        "--schedule",
        "power: 0.5",
        "--generations",
        "5",
        "--chains",
        "10",
        "--seed",
        "3",
        "--threads",
        "3",
        "--shard",
        "2/4",
        "--out",
    ]
    .map(String::from)
    .to_vec();
    expected.push(format!("{d}/shards/shard-2.bin"));
    expected.push("--checkpoint".into());
    expected.push(format!("{d}/checkpoints/shard-2"));
    expected.push("--resume".into());
    assert_eq!(shard, expected);
    assert!(dir.join("checkpoints/shard-2").is_dir());

    let merge = recorded("merge.sbatch");
    let mut expected = vec!["merge".to_string()];
    expected.extend((0..4).map(|i| format!("{d}/shards/shard-{i}.bin")));
    expected.push("--out".into());
    expected.push(format!("{d}/result.parquet"));
    assert_eq!(merge, expected);

    // Without Slurm's variable the shard script stops with a message, before running anything.
    let _ = std::fs::remove_file(&record);
    let out = Command::new("bash")
        .arg(dir.join("shards.sbatch"))
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env("RECORD", &record)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLURM_ARRAY_TASK_ID"));
    assert!(!record.exists());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A folder with an `sbatch` that records each call's arguments in `calls/N` and prints job id
/// 100 + N (with a `;cluster` suffix on even calls, as sbatch --parsable does on federations),
/// or fails when `FAKE_SBATCH_FAIL` is set.
fn fake_sbatch(tmp: &Path) -> (String, PathBuf) {
    let bin = tmp.join("bin");
    let calls = tmp.join("calls");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&calls).unwrap();
    let script = format!(
        r#"#!/bin/bash
if [ -n "${{FAKE_SBATCH_FAIL:-}}" ]; then
  echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2
  exit 1
fi
calls='{calls}'
n=$(( $(ls "$calls" | wc -l) + 1 ))
printf '%s\n' "$@" > "$calls/$n"
if [ $((n % 2)) = 0 ]; then echo "$((100 + n));cluster"; else echo "$((100 + n))"; fi
"#,
        calls = calls.display()
    );
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, calls)
}

fn call(calls: &Path, n: u32) -> Vec<String> {
    read(calls.join(n.to_string()))
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn submit_and_resubmit_through_a_fake_sbatch() {
    let tmp = scratch_dir("submit");
    let (path, calls) = fake_sbatch(&tmp);
    let dir = tmp.join("run");
    let d = dir.to_str().unwrap().to_string();
    let mut args = SIMULATE.to_vec();
    args.extend(["--shards", "3", "--dir", &d, "--submit"]);
    let stdout = ok(&slurm_in(&tmp, &args, Some(&path)));
    assert!(stdout.contains("shards job: 101\n"), "{stdout}");
    assert!(stdout.contains("merge job: 102\n"), "{stdout}");
    assert_eq!(
        call(&calls, 1),
        ["--parsable", &format!("{d}/shards.sbatch")]
    );
    assert_eq!(
        call(&calls, 2),
        [
            "--parsable",
            "--dependency=afterok:101",
            &format!("{d}/merge.sbatch")
        ]
    );

    let run = |script: &str, extra: &[&str]| -> Output {
        Command::new(dir.join(script))
            .args(extra)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let out = run("submit.sh", &[]);
    let stdout = ok(&out);
    assert!(stdout.contains("shards job: 103\n"), "{stdout}");
    assert!(stdout.contains("merge job: 104\n"), "{stdout}");
    assert_eq!(
        call(&calls, 3),
        ["--parsable", &format!("{d}/shards.sbatch")]
    );
    assert_eq!(
        call(&calls, 4),
        [
            "--parsable",
            "--dependency=afterok:103",
            &format!("{d}/merge.sbatch")
        ]
    );

    ok(&run("resubmit.sh", &["2", "0"]));
    assert_eq!(
        call(&calls, 5),
        ["--parsable", "--array=2,0", &format!("{d}/shards.sbatch")]
    );
    assert_eq!(
        call(&calls, 6),
        [
            "--parsable",
            "--dependency=afterok:105",
            &format!("{d}/merge.sbatch")
        ]
    );
    // Without indices: the shards whose file is missing.
    std::fs::write(dir.join("shards/shard-1.bin"), b"").unwrap();
    ok(&run("resubmit.sh", &[]));
    assert_eq!(call(&calls, 7)[1], "--array=0,2");
    std::fs::write(dir.join("shards/shard-0.bin"), b"").unwrap();
    std::fs::write(dir.join("shards/shard-2.bin"), b"").unwrap();
    let stdout = ok(&run("resubmit.sh", &[]));
    assert!(stdout.contains("nothing to resubmit"), "{stdout}");
    for bad in ["3", "x", "-1", "1,2", ""] {
        let out = run("resubmit.sh", &[bad]);
        assert_eq!(out.status.code(), Some(2), "resubmit.sh '{bad}'");
    }
    assert!(!calls.join("9").exists(), "nothing submitted after call 8");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn submit_errors_are_one_line() {
    let tmp = scratch_dir("submit-errors");
    // No sbatch at all: refused before anything is written.
    let empty = tmp.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut args = SIMULATE.to_vec();
    args.extend(["--shards", "2", "--submit"]);
    let out = slurm_in(&tmp, &args, Some(empty.to_str().unwrap()));
    assert_refused(&out, "no sbatch");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sbatch not found"));
    assert!(!tmp.join("slurm-gaussian-seed7").exists());

    // sbatch refuses the job: its message on one line; the scripts stay for a later submit.
    let (path, _) = fake_sbatch(&tmp);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_collapse"));
    let out = cmd
        .arg("slurm")
        .args(&args)
        .current_dir(&tmp)
        .env("PATH", &path)
        .env("FAKE_SBATCH_FAIL", "1")
        .output()
        .unwrap();
    assert_refused(&out, "sbatch fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid partition name"));
    assert!(tmp.join("slurm-gaussian-seed7/submit.sh").is_file());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn help_names_every_option() {
    let tmp = scratch_dir("help");
    let stdout = ok(&slurm_in(&tmp, &["--help"], None));
    for option in [
        "--shards",
        "--partition",
        "--time",
        "--cpus-per-task",
        "--dir",
        "--submit",
        "resubmit.sh",
    ] {
        assert!(stdout.contains(option), "{option}: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Bad input: exit code 2, one line on stderr that starts with `collapse: `, no panic, nothing
/// on stdout.
fn assert_refused(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: stderr {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.starts_with("collapse: "), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}");
    assert!(out.stdout.is_empty(), "{what}");
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = SIMULATE.to_vec();
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("--shards 0", with(&["--shards", "0"]), "--shards"),
        (
            "more shards than chains",
            with(&["--shards", "101"]),
            "--chains",
        ),
        (
            "--shards not a number",
            with(&["--shards", "four"]),
            "--shards",
        ),
        (
            "more shards than a command line holds",
            vec![
                "gaussian",
                "--samples",
                "20",
                "--generations",
                "5",
                "--chains",
                "100000000",
                "--seed",
                "7",
                "--shards",
                "20000",
            ],
            "at most",
        ),
        (
            "--shards beyond u64",
            with(&["--shards", "99999999999999999999999"]),
            "--shards",
        ),
        ("no --shards", with(&[]), "--shards"),
        (
            "--shards twice",
            with(&["--shards", "2", "--shards=3"]),
            "twice",
        ),
        ("--shards without a value", with(&["--shards"]), "--shards"),
        ("no process", vec!["--shards", "2"], "process"),
        (
            "options before the process",
            vec!["--shards", "2", "--samples", "20", "gaussian"],
            "process",
        ),
        (
            "unknown process",
            vec!["nonsense", "--shards", "2"],
            "nonsense",
        ),
        (
            "unknown simulate flag",
            with(&["--bogus", "1", "--shards", "2"]),
            "--bogus",
        ),
        (
            "missing simulate flag",
            vec!["gaussian", "--samples", "20", "--shards", "2"],
            "--",
        ),
        (
            "--shard",
            with(&["--shard", "0/2", "--shards", "2"]),
            "--shard",
        ),
        (
            "--shard=",
            with(&["--shard=0/2", "--shards", "2"]),
            "--shard",
        ),
        (
            "--out",
            with(&["--out", "x.parquet", "--shards", "2"]),
            "--out",
        ),
        (
            "--checkpoint",
            with(&["--checkpoint", "c", "--shards", "2"]),
            "--checkpoint",
        ),
        ("--resume", with(&["--resume", "--shards", "2"]), "--resume"),
        (
            "--threads",
            with(&["--threads", "2", "--shards", "2"]),
            "--cpus-per-task",
        ),
        (
            "--time 1:2:3:4",
            with(&["--shards", "2", "--time", "1:2:3:4"]),
            "--time",
        ),
        (
            "--time abc",
            with(&["--shards", "2", "--time", "abc"]),
            "--time",
        ),
        (
            "--time 10:75",
            with(&["--shards", "2", "--time", "10:75"]),
            "--time",
        ),
        (
            "--partition with a space",
            with(&["--shards", "2", "--partition", "a b"]),
            "--partition",
        ),
        (
            "--partition=-x",
            with(&["--shards", "2", "--partition=-x"]),
            "--partition",
        ),
        (
            "--cpus-per-task 0",
            with(&["--shards", "2", "--cpus-per-task", "0"]),
            "--cpus-per-task",
        ),
        (
            "--dir in a missing folder",
            with(&["--shards", "2", "--dir", "missing/run"]),
            "does not exist",
        ),
        (
            "--dir with a space",
            with(&["--shards", "2", "--dir", "my run"]),
            "--dir",
        ),
        (
            "--dir with a %",
            with(&["--shards", "2", "--dir", "run%a"]),
            "--dir",
        ),
        (
            "--submit=yes",
            with(&["--shards", "2", "--submit=yes"]),
            "--submit",
        ),
    ];
    for (what, args, mentions) in cases {
        let tmp = scratch_dir("bad");
        let out = slurm_in(&tmp, &args, None);
        assert_refused(&out, what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(mentions), "{what}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{what}: left {left:?}");
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
