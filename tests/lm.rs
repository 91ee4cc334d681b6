//! `collapse simulate lm`: refusals of bad input, the message naming the fetch command when
//! the corpus is missing, and, on the real Brown Corpus (fetched by `make data`; CI sets
//! `COLLAPSE_REQUIRE_DATA=1`), a quick run's JSON and files and the collapse it shows.

use collapse_sim::data;
use std::path::PathBuf;
use std::process::Output;

mod common;

use common::{json_of, refused};

fn collapse(args: &[&str]) -> Output {
    common::simulate("lm", args)
}

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("lm", name)
}

#[test]
fn bad_input_is_refused_in_one_line() {
    common::bad_input_is_refused(
        "lm",
        &[
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
            (&["--model", "rnn"], "ngram or transformer"),
            (&["--epochs", "5"], "--epochs is for --model transformer"),
            (&["--width", "64"], "--width is for --model transformer"),
            (
                &["--model", "transformer", "--order", "3"],
                "n-gram's setting",
            ),
            (&["--model", "transformer", "--heads", "3"], "heads"),
            (&["--model", "transformer", "--width", "0"], "width"),
            (&["--model", "transformer", "--epochs", "0"], "epochs"),
            (&["--model", "transformer", "--lr", "NaN"], "lr"),
            (&["--model", "transformer", "--batch", "0"], "batch"),
            (
                &["--model", "transformer", "--base-windows", "0"],
                "base windows",
            ),
            (
                &["--model", "transformer", "--block", "3000"],
                "longer than the model's",
            ),
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
            (&["--shard", "0/2"], "--out"),
            (&["--shard", "1/1/1", "--out", "/tmp/x"], "--shard"),
            (&["--shard", "0/2", "--out", "/tmp/x"], "2 shards of 1 seed"),
            (&["--checkpoint-every=-1"], "--checkpoint-every"),
            (&["--checkpoint-every", "NaN"], "--checkpoint-every"),
        ],
    );
}

#[test]
fn a_missing_corpus_names_the_fetch_command() {
    common::missing_data_names_the_fetch_command("lm", "--corpus", "kjv");
}

/// Whether the Brown Corpus is cached; its absence fails under `COLLAPSE_REQUIRE_DATA=1`.
fn brown_cached() -> bool {
    common::cached(data::load_corpus("brown"), "the real-corpus run").is_some()
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
        json_of(&collapse(&args))
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

/// A small transformer run on the real corpus: the protocol end to end, its settings in the
/// JSON (the parameter count is the formula's), and test perplexities that are real numbers
/// between 1 and the vocabulary.
#[test]
fn quick_transformer_run() {
    if !brown_cached() {
        return;
    }
    let args = [
        "--model",
        "transformer",
        "--vocab",
        "512",
        "--width",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--blocks",
        "40",
        "--base-windows",
        "40",
        "--base-epochs",
        "1",
        "--epochs",
        "1",
        "--generations",
        "2",
        "--seeds",
        "2",
        "--json",
    ];
    let run = json_of(&collapse(&args));
    assert_eq!(run["model"], "transformer");
    let settings = &run["model_settings"];
    // (V + 1) d + C d + L (12 d^2 + 13 d) + 2 d with V = 512, d = 32, C = 128, L = 1.
    assert_eq!(
        settings["parameters"],
        513 * 32 + 128 * 32 + 12 * 32 * 32 + 13 * 32 + 64
    );
    assert_eq!(settings["context"], 128);
    let rows = run["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let ppl = r["test_perplexity"]["mean"].as_f64().unwrap();
        assert!(ppl > 1.0 && ppl < 512.0, "{ppl}");
    }

    // The seeds in two shards (a Slurm array), then the whole command with --resume
    // assembles them without training again: the same rows.
    let sharded = temp_dir("transformer-shards");
    let with = |extra: &[&str]| -> Vec<String> {
        args.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let out = sharded.to_str().unwrap();
    for shard in ["1/2", "0/2"] {
        let a = with(&["--out", out, "--shard", shard]);
        let done = json_of(&collapse(&a.iter().map(String::as_str).collect::<Vec<_>>()));
        assert_eq!(done["shard"], shard);
    }
    assert!(sharded.join("checkpoints/base.ckpt").is_file());
    assert!(
        !sharded.join("lm.parquet").exists(),
        "a shard writes only checkpoints"
    );
    let a = with(&["--out", out, "--resume"]);
    let assembled = collapse(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&assembled.stderr).into_owned();
    assert!(
        !stderr.contains("training step"),
        "assembling trained again: {stderr}"
    );
    assert_eq!(json_of(&assembled)["rows"], run["rows"]);
    refused(
        &collapse(&["--seeds", "2", "--shard", "2/3", "--out", out]),
        "3 shards of 2 seeds",
    );
    std::fs::remove_dir_all(&sharded).unwrap();

    // SIGINT once the first checkpoint (the base's, within its training) is written; the
    // same command with --resume gives the same rows.
    let stopped = temp_dir("transformer-sigint");
    let out = stopped.to_str().unwrap();
    let a = with(&["--out", out, "--checkpoint-every", "0"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    common::interrupt_once_saved("lm", &a, &stopped.join("checkpoints/base.ckpt"));
    let mut resumed = a.clone();
    resumed.push("--resume");
    assert_eq!(json_of(&collapse(&resumed))["rows"], run["rows"]);
    std::fs::remove_dir_all(&stopped).unwrap();
}
