//! Helpers shared by the command-line tests of the learned models (`tests/vae.rs`,
//! `tests/lm.rs`).

use collapse_sim::data::DataError;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `collapse simulate PROCESS ARGS...`.
pub fn simulate(process: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_collapse"))
        .arg("simulate")
        .arg(process)
        .args(args)
        .output()
        .expect("run collapse")
}

/// A path in the temporary folder, unique to this process, removed if it exists.
pub fn temp_dir(process: &str, name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("collapse-{process}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Exit code 2, one line on stderr containing `needle`, nothing on stdout.
pub fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{needle}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("collapse: "), "{stderr}");
    assert!(stderr.contains(needle), "{stderr} lacks {needle}");
    assert!(!stderr.contains("panicked"));
    assert!(out.stdout.is_empty());
}

/// The one JSON object on stdout of a run that succeeded.
pub fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Each (arguments, message) of `cases` refused by `simulate PROCESS` (see [`refused`]), and
/// so is an `--out` that is a file, not a folder.
pub fn bad_input_is_refused(process: &str, cases: &[(&[&str], &str)]) {
    for (args, needle) in cases {
        refused(&simulate(process, args), needle);
    }
    let file = temp_dir(process, "not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    refused(
        &simulate(process, &["--out", file.to_str().unwrap()]),
        "not a folder",
    );
    std::fs::remove_file(&file).unwrap();
}

/// `simulate PROCESS FLAG NAME` on an empty data cache is refused with the fetch command.
pub fn missing_data_names_the_fetch_command(process: &str, flag: &str, name: &str) {
    let empty = temp_dir(process, "empty-cache");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_collapse"))
        .args(["simulate", process, flag, name])
        .env("COLLAPSE_DATA", &empty)
        .output()
        .unwrap();
    refused(&out, &format!("collapse data fetch {name}"));
    std::fs::remove_dir_all(&empty).unwrap();
}

/// The loaded data, or None (with a note naming `skipped`) when they are not cached and CI
/// does not require them (`COLLAPSE_REQUIRE_DATA=1` fails instead).
pub fn cached<T>(loaded: Result<T, DataError>, skipped: &str) -> Option<T> {
    match loaded {
        Ok(d) => Some(d),
        Err(e @ DataError::Missing { .. }) => {
            let required = std::env::var("COLLAPSE_REQUIRE_DATA").is_ok_and(|v| v == "1");
            assert!(!required, "COLLAPSE_REQUIRE_DATA=1: {e}");
            eprintln!("note: skipping {skipped}: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// `simulate PROCESS ARGS...` sent SIGINT once `file` exists: it exits 130 naming `--resume`
/// (or, if it finished before the signal arrived, succeeds).
pub fn interrupt_once_saved(process: &str, args: &[&str], file: &Path) {
    let child = Command::new(env!("CARGO_BIN_EXE_collapse"))
        .args(["simulate", process])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !file.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(file.exists(), "no {} within two minutes", file.display());
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(130) {
        assert!(stderr.contains("--resume"), "{stderr}");
    } else {
        assert!(out.status.success(), "{stderr}");
    }
}
