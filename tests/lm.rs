//! `collapse simulate lm`: refusals of bad input, the message naming the fetch command when
//! the corpus is missing, and, on the real Brown Corpus (fetched by `make data`; CI sets
//! `COLLAPSE_REQUIRE_DATA=1`), a quick run's JSON and files and the collapse it shows.

use collapse_sim::data::{self, DataError};
use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

use common::refused;

fn collapse(args: &[&str]) -> Output {
    common::simulate("lm", args)
}

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("lm", name)
}

#[test]
fn bad_input_is_refused_in_one_line() {
    for (args, needle) in [
        (&["--corpus", "wikitext"][..], "unknown data set 'wikitext'"),
        (
            &["--corpus", "mnist5k"],
            "is an image set, not a text corpus",
        ),
        (&["--keep-real", "1.5"], "[0, 1]"),
        (&["--keep-real=-0.1"], "[0, 1]"),
        (&["--keep-real", "NaN"], "[0, 1]"),
        (&["--keep-real", "0.1", "--strategy", "replace"], "give one"),
        (&["--strategy", "keep:2"], "[0, 1]"),
        (&["--strategy", "hoard"], "unknown strategy"),
        (&["--model", "transformer"], "not available yet"),
        (&["--model", "rnn"], "ngram or transformer"),
        (&["--epochs", "5"], "no epochs"),
        (&["--order", "0"], "order"),
        (&["--order", "5"], "order"),
        (&["--vocab", "100"], "vocab"),
        (&["--block", "1"], "block"),
        (&["--block", "100000"], "block"),
        (&["--generations", "0"], "generations"),
        (&["--generations", "ten"], "generations"),
        (&["--seeds", "0"], "seeds"),
        (&["--blocks", "0"], "blocks"),
        (&["--decode", "greedy"], "beam or sample"),
        (&["--beams", "0"], "beams"),
        (&["--repetition-penalty", "NaN"], "repetition penalty"),
        (&["--repetition-penalty", "0.5"], "repetition penalty"),
        (&["--threads", "0"], "--threads"),
        (&["--resume"], "--out"),
    ] {
        refused(&collapse(args), needle);
    }
    let file = temp_dir("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    refused(
        &collapse(&["--out", file.to_str().unwrap()]),
        "not a folder",
    );
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn a_missing_corpus_names_the_fetch_command() {
    let empty = temp_dir("empty-cache");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_collapse"))
        .args(["simulate", "lm", "--corpus", "kjv"])
        .env("COLLAPSE_DATA", &empty)
        .output()
        .unwrap();
    refused(&out, "collapse data fetch kjv");
    std::fs::remove_dir_all(&empty).unwrap();
}

/// Whether the Brown Corpus is cached; its absence fails under `COLLAPSE_REQUIRE_DATA=1`.
fn brown_cached() -> bool {
    match data::load_corpus("brown") {
        Ok(_) => true,
        Err(e @ DataError::Missing { .. }) => {
            let required = std::env::var("COLLAPSE_REQUIRE_DATA").is_ok_and(|v| v == "1");
            assert!(!required, "COLLAPSE_REQUIRE_DATA=1: {e}");
            eprintln!("note: skipping the real-corpus run: {e}");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

/// On 1,500 training blocks of the Brown Corpus, three generations of the paper's protocol
/// (3-gram, 5-beam search with penalty 3): the JSON rows, the files, and the collapse itself:
/// the test perplexity rises and token types vanish from the synthetic data, generation after
/// generation, while keeping 10% of the real data slows both.
#[test]
fn quick_run_json_files_and_collapse() {
    if !brown_cached() {
        return;
    }
    let out_dir = temp_dir("quick");
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--generations", "3", "--blocks", "1500", "--json"];
        args.extend_from_slice(extra);
        let out = collapse(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    let out = out_dir.to_str().unwrap();
    let replace = run(&["--out", out]);
    // The checkpoints of a finished run: refused without --resume; with it, the same results.
    refused(
        &collapse(&[
            "--generations",
            "3",
            "--blocks",
            "1500",
            "--json",
            "--out",
            out,
        ]),
        "pass --resume",
    );
    assert_eq!(run(&["--out", out, "--resume"]), replace);
    assert!(out_dir.join("checkpoints/seed-0.ckpt").is_file());
    assert_eq!(replace["process"], "lm");
    assert_eq!(replace["vocab"], 4096);
    assert_eq!(replace["train_blocks"], 1500);
    let rows = replace["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for key in [
        "test_perplexity",
        "synthetic_perplexity_median",
        "synthetic_perplexity_p95",
        "surviving_types",
    ] {
        assert!(rows[0][key]["mean"].as_f64().is_some(), "{key}");
        // One seed: no standard error.
        assert!(rows[0][key]["stderr"].is_null(), "{key}");
    }
    let mean =
        |v: &serde_json::Value, g: usize, key: &str| v["rows"][g][key]["mean"].as_f64().unwrap();
    for g in 1..3 {
        assert!(mean(&replace, g, "test_perplexity") > mean(&replace, g - 1, "test_perplexity"));
        assert!(mean(&replace, g, "surviving_types") < mean(&replace, g - 1, "surviving_types"));
    }
    let kept = run(&["--keep-real", "0.1"]);
    assert_eq!(
        mean(&kept, 0, "test_perplexity"),
        mean(&replace, 0, "test_perplexity"),
        "generation 0 is fitted to the real blocks in both regimes"
    );
    assert!(mean(&kept, 2, "test_perplexity") < mean(&replace, 2, "test_perplexity"));
    assert!(mean(&kept, 2, "surviving_types") > mean(&replace, 2, "surviving_types"));
    for f in [
        "lm.parquet",
        "summary.parquet",
        "perplexities.parquet",
        "survival.parquet",
        "samples.csv",
    ] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    // Rows end at newlines outside quotes (the samples keep the corpus's line breaks).
    let samples = std::fs::read_to_string(out_dir.join("samples.csv")).unwrap();
    let mut quoted = false;
    let mut rows = 0;
    for c in samples.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => rows += 1,
            _ => {}
        }
    }
    assert_eq!(rows, 4, "a header and one row per generation");
    std::fs::remove_dir_all(&out_dir).unwrap();
}
