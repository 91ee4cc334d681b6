//! Helpers shared by the command-line tests of the learned models (`tests/vae.rs`,
//! `tests/lm.rs`).

use std::path::PathBuf;
use std::process::{Command, Output};

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
