//! Shards, merge, checkpoints and resume through the command line: the merged or resumed run
//! has the bytes of the single run, for every process `simulate` supports; wrong sets, corrupt
//! files and bad options are refused with one line and exit code 2, leaving nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn collapse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_collapse"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("collapse-pieces-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str], extra: &[&str]) -> Output {
    collapse().args(args).args(extra).output().unwrap()
}

fn ok(args: &[&str], extra: &[&str]) {
    let out = run(args, extra);
    assert!(
        out.status.success(),
        "{args:?} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exit code 2 and one line on stderr containing `needle`.
fn refused(args: &[&str], needle: &str) {
    let out = collapse().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Small runs of every process and strategy family.
const RUNS: [&[&str]; 6] = [
    &[
        "simulate",
        "gaussian",
        "--samples",
        "12",
        "--generations",
        "25",
        "--chains",
        "700",
        "--seed",
        "5",
    ],
    &[
        "simulate",
        "gaussian",
        "--samples",
        "12",
        "--generations",
        "20",
        "--chains",
        "300",
        "--seed",
        "5",
        "--strategy",
        "accumulate-subsample",
    ],
    &[
        "simulate",
        "markov",
        "--categories",
        "12",
        "--samples",
        "20",
        "--generations",
        "30",
        "--chains",
        "300",
        "--seed",
        "5",
    ],
    &[
        "simulate",
        "mvn",
        "--dim",
        "3",
        "--samples",
        "15",
        "--generations",
        "20",
        "--chains",
        "200",
        "--seed",
        "5",
        "--strategy",
        "keep:0.3",
    ],
    &[
        "simulate",
        "mvn",
        "--dim",
        "2",
        "--samples",
        "15",
        "--generations",
        "10",
        "--chains",
        "150",
        "--seed",
        "5",
        "--method",
        "sufficient",
    ],
    &[
        "simulate",
        "gmm",
        "--components",
        "2",
        "--dim",
        "2",
        "--samples",
        "60",
        "--generations",
        "4",
        "--chains",
        "40",
        "--seed",
        "5",
    ],
];

#[test]
fn merged_shards_have_the_bytes_of_the_single_run() {
    let dir = temp_dir("merge");
    for (k, args) in RUNS.iter().enumerate() {
        let single = dir.join(format!("single-{k}.parquet"));
        ok(args, &["--out", s(&single)]);
        for shards in [1usize, 3, 7] {
            let files: Vec<PathBuf> = (0..shards)
                .map(|i| dir.join(format!("shard-{k}-{i}-of-{shards}.bin")))
                .collect();
            for (i, f) in files.iter().enumerate() {
                // Shards on different thread counts: the bits never depend on threads.
                let threads = (1 + i % 2).to_string();
                let shard = format!("{i}/{shards}");
                ok(
                    args,
                    &["--shard", &shard, "--out", s(f), "--threads", &threads],
                );
            }
            let merged = dir.join(format!("merged-{k}-{shards}.parquet"));
            let mut merge = vec!["merge".to_string()];
            // Any order.
            merge.extend(files.iter().rev().map(|f| s(f).to_string()));
            merge.extend(["--out".into(), s(&merged).into()]);
            let merge: Vec<&str> = merge.iter().map(String::as_str).collect();
            ok(&merge, &[]);
            assert!(
                bytes(&merged) == bytes(&single),
                "{args:?}: {shards} shards merged differ from the single run"
            );
        }
        // A checkpointed run (one unit per block or so) also has the single run's bytes.
        let resumed = dir.join(format!("checkpointed-{k}.parquet"));
        let cp = dir.join(format!("cp-{k}"));
        ok(
            args,
            &[
                "--out",
                s(&resumed),
                "--checkpoint",
                s(&cp),
                "--checkpoint-every",
                "0",
            ],
        );
        assert!(
            bytes(&resumed) == bytes(&single),
            "{args:?}: checkpointed run differs"
        );
        assert!(
            !cp.exists(),
            "the checkpoint is removed after a completed run"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Unit files saved so far in a checkpoint folder.
fn units(cp: &Path) -> usize {
    std::fs::read_dir(cp).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".piece"))
            .count()
    })
}

/// Waits until `cp` holds at least `count` units or the child ends; true if it still runs.
fn wait_for_units(child: &mut Child, cp: &Path, count: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if units(cp) >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no progress in 2 minutes");
}

fn spawn(args: &[&str], extra: &[&str]) -> Child {
    collapse()
        .args(args)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs big enough that a unit of chains takes a while, for every process.
const LONG_RUNS: [&[&str]; 4] = [
    &[
        "simulate",
        "gaussian",
        "--samples",
        "100",
        "--generations",
        "200",
        "--chains",
        "40000",
        "--seed",
        "9",
    ],
    &[
        "simulate",
        "markov",
        "--categories",
        "200",
        "--samples",
        "300",
        "--generations",
        "200",
        "--chains",
        "10000",
        "--seed",
        "9",
    ],
    &[
        "simulate",
        "mvn",
        "--dim",
        "4",
        "--samples",
        "60",
        "--generations",
        "150",
        "--chains",
        "2000",
        "--seed",
        "9",
    ],
    &[
        "simulate",
        "gmm",
        "--components",
        "2",
        "--dim",
        "2",
        "--samples",
        "200",
        "--generations",
        "12",
        "--chains",
        "160",
        "--seed",
        "9",
    ],
];

#[test]
fn killed_runs_resume_to_the_same_bytes() {
    let dir = temp_dir("kill");
    for (k, args) in LONG_RUNS.iter().enumerate() {
        let single = dir.join(format!("single-{k}.parquet"));
        ok(args, &["--out", s(&single)]);
        let out = dir.join(format!("resumed-{k}.parquet"));
        let cp = dir.join(format!("cp-{k}"));
        let flags = [
            "--out",
            s(&out),
            "--checkpoint",
            s(&cp),
            "--checkpoint-every",
            "0",
            "--resume",
        ];
        // SIGKILL at different points: before any unit, after one, after a few more (each
        // time resuming what the last run saved), then a resumed run to the end.
        let mut killed_mid_run = 0;
        for after in [0usize, 1, 3, 6] {
            let mut child = spawn(args, &flags);
            let target = units(&cp) + after;
            if after == 0 || wait_for_units(&mut child, &cp, target) {
                if child.try_wait().unwrap().is_none() {
                    killed_mid_run += 1;
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        assert!(
            killed_mid_run >= 2,
            "{args:?}: the runs ended before they could be killed"
        );
        assert!(
            !out.exists() || units(&cp) == 0,
            "no result before the run completes"
        );
        ok(args, &flags);
        assert!(
            bytes(&out) == bytes(&single),
            "{args:?}: the resumed run differs from the single run"
        );
        assert!(!cp.exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_saves_and_exits_and_the_resumed_shard_is_the_same() {
    let dir = temp_dir("term");
    let args = LONG_RUNS[0];
    // Shard 1 of 2, checkpointed; SIGTERM after its first unit.
    let plain = dir.join("plain.bin");
    ok(args, &["--shard", "1/2", "--out", s(&plain)]);
    let shard = dir.join("shard.bin");
    let cp = dir.join("cp");
    let flags = [
        "--shard",
        "1/2",
        "--out",
        s(&shard),
        "--checkpoint",
        s(&cp),
        "--checkpoint-every",
        "0",
        "--resume",
    ];
    let mut child = spawn(args, &flags);
    assert!(
        wait_for_units(&mut child, &cp, 1),
        "the shard ended too soon"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("--resume") && err.contains("saved"), "{err}");
    assert!(!shard.exists(), "no shard file from an interrupted run");
    assert!(units(&cp) >= 1);
    ok(args, &flags);
    assert!(bytes(&shard) == bytes(&plain), "the resumed shard differs");
    // Resumed again, a whole shard file is kept as it is (a resubmission after success).
    let again = run(args, &flags);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to do"));
    assert!(bytes(&shard) == bytes(&plain));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_pieces_and_options_are_refused() {
    let dir = temp_dir("bad");
    let args = RUNS[0];
    let with = |extra: &[&str]| -> Vec<String> {
        args.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let out = dir.join("o.bin");
    for (extra, needle) in [
        (vec!["--shard", "4/4", "--out", s(&out)], "0 <= I < N"),
        (vec!["--shard", "0/0", "--out", s(&out)], "0 <= I < N"),
        (vec!["--shard", "a/b", "--out", s(&out)], "expected I/N"),
        (vec!["--shard=-1/4", "--out", s(&out)], "expected I/N"),
        (
            vec!["--shard", "1/701", "--out", s(&out)],
            "each shard needs a chain",
        ),
        (vec!["--shard", "1/4"], "--shard needs --out"),
        (vec!["--resume"], "--checkpoint"),
        (
            vec![
                "--checkpoint",
                s(&dir.join("c")),
                "--checkpoint-every",
                "NaN",
            ],
            "checkpoint-every",
        ),
        (
            vec!["--checkpoint", s(&dir.join("c")), "--checkpoint-every=-1"],
            "checkpoint-every",
        ),
        (
            vec!["--shard", "0/2", "--out", "/no/such/folder/x.bin"],
            "does not exist",
        ),
    ] {
        let a = with(&extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, needle);
    }
    assert!(!out.exists() && !dir.join("c").exists());

    // A set of shards: complete, then wrong in every way.
    let shard = |i: usize, n: usize, seed: &str| -> PathBuf {
        let f = dir.join(format!("s{i}-{n}-{seed}.bin"));
        let mut a: Vec<&str> = args.to_vec();
        let at = a.iter().position(|&x| x == "--seed").unwrap();
        a[at + 1] = seed;
        let sh = format!("{i}/{n}");
        ok(&a, &["--shard", &sh, "--out", s(&f)]);
        f
    };
    let (a, b, c) = (shard(0, 3, "5"), shard(1, 3, "5"), shard(2, 3, "5"));
    let other_seed = shard(1, 3, "6");
    let half = shard(1, 2, "5");
    let merged = dir.join("m.parquet");
    let m = s(&merged);
    refused(
        &["merge", s(&a), s(&b), "--out", m],
        "[466, 700) are missing",
    );
    refused(
        &["merge", s(&a), s(&b), s(&c), s(&b), "--out", m],
        "overlap",
    );
    refused(
        &["merge", s(&a), s(&other_seed), s(&c), "--out", m],
        "spec or seed differs",
    );
    refused(&["merge", s(&a), s(&b), s(&half), "--out", m], "overlap");
    refused(
        &["merge", s(&a), s(&dir.join("none.bin")), "--out", m],
        "none.bin",
    );
    let corrupt = dir.join("corrupt.bin");
    let mut bad = bytes(&b);
    let at = bad.len() / 2;
    bad[at] ^= 0x10;
    std::fs::write(&corrupt, bad).unwrap();
    refused(
        &["merge", s(&a), s(&corrupt), s(&c), "--out", m],
        "checksum",
    );
    let truncated = dir.join("truncated.bin");
    std::fs::write(&truncated, &bytes(&b)[..1000]).unwrap();
    refused(
        &["merge", s(&a), s(&truncated), s(&c), "--out", m],
        "truncated",
    );
    let text = dir.join("text.bin");
    std::fs::write(&text, "not a piece").unwrap();
    refused(
        &["merge", s(&text), "--out", m],
        "not a collapse piece file",
    );
    refused(
        &[
            "merge",
            s(&a),
            s(&b),
            s(&c),
            "--out",
            "/no/such/folder/m.parquet",
        ],
        "does not exist",
    );
    assert!(!merged.exists(), "nothing written by a refused merge");
    ok(&["merge", s(&c), s(&a), s(&b), "--out", m], &[]);
    assert!(merged.exists());

    // A checkpoint: not continued without --resume, refused when corrupt or of another run.
    let cp = dir.join("cp");
    let long = LONG_RUNS[0];
    let mut child = spawn(long, &["--checkpoint", s(&cp), "--checkpoint-every", "0"]);
    assert!(wait_for_units(&mut child, &cp, 2), "the run ended too soon");
    let _ = child.kill();
    let _ = child.wait();
    let cps = s(&cp);
    let again: Vec<&str> = long.iter().copied().chain(["--checkpoint", cps]).collect();
    refused(&again, "pass --resume");
    let mut other: Vec<&str> = long
        .iter()
        .copied()
        .chain(["--checkpoint", cps, "--resume"])
        .collect();
    let at = other.iter().position(|&x| x == "--seed").unwrap();
    other[at + 1] = "10";
    refused(&other, "different run");
    let unit = std::fs::read_dir(&cp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "piece"))
        .unwrap();
    let mut bad = bytes(&unit);
    bad[200] ^= 1;
    std::fs::write(&unit, bad).unwrap();
    let resume: Vec<&str> = long
        .iter()
        .copied()
        .chain(["--checkpoint", cps, "--resume"])
        .collect();
    refused(&resume, "checksum");
    std::fs::remove_dir_all(&dir).unwrap();
}
