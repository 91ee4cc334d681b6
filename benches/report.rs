//! `cargo bench` regenerates the report: at the default scale into `reports/out` under
//! `cargo bench`, and a smoke-scale run into a temporary folder when run without `--bench`
//! (as `cargo test --all-targets` does). Unknown arguments (criterion filters) are ignored.

use collapse_reports::report::REPORT_SEED;
use collapse_reports::{Scale, run_report};
use std::path::PathBuf;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (scale, out) = if bench {
        (Scale::Default, PathBuf::from("reports/out"))
    } else {
        (
            Scale::Smoke,
            std::env::temp_dir().join(format!("collapse-report-smoke-{}", std::process::id())),
        )
    };
    match run_report(scale, &out, REPORT_SEED) {
        Ok(s) => println!(
            "report ({}) written to {} in {:.1} s: {} experiments, {} compared pairs, worst |z| = {:.2}",
            scale.name(),
            s.out_dir.join("index.html").display(),
            s.seconds,
            s.experiments,
            s.comparisons,
            s.worst_z
        ),
        Err(e) => {
            eprintln!("report failed: {e}");
            std::process::exit(1);
        }
    }
    if !bench {
        let _ = std::fs::remove_dir_all(&out);
    }
}
