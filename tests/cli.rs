//! The `collapse` command-line contract: JSON shapes, reproducibility across thread counts, and
//! bad input (one line on stderr, exit code 2, nothing written).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn collapse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_collapse"))
        .args(args)
        .output()
        .expect("run collapse")
}

fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "collapse-test-{}-{tag}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
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
fn theory_json_contract() {
    let out = collapse(&[
        "theory",
        "gaussian",
        "--samples",
        "20",
        "--generations",
        "30",
        "--digits",
        "25",
        "--json",
    ]);
    let v = json(&out);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 31);
    let keys = [
        "expected_variance",
        "expected_sigma",
        "expected_log_variance",
        "var_log_variance",
        "mean_sq_error",
        "expected_w2_sq",
        "w2_sq_lower_bound",
    ];
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row["n"].as_u64(), Some(n as u64));
        for k in keys {
            let s = row[k]
                .as_str()
                .unwrap_or_else(|| panic!("{k} is not a string"));
            let x: f64 = s
                .parse()
                .unwrap_or_else(|_| panic!("{k} = {s} is not a decimal"));
            assert!(x.is_finite());
            let digits = s
                .trim_start_matches('-')
                .chars()
                .take_while(|c| *c != 'e')
                .filter(char::is_ascii_digit)
                .collect::<String>();
            assert!(digits.trim_start_matches('0').len() <= 25, "{k} = {s}");
        }
    }
    // Unbiased: E[sigma^2] = 1 exactly; E[(mu_n - mu)^2] = n/M; E[sigma_30] = 0.673979758...
    assert_eq!(rows[30]["expected_variance"], "1");
    assert_eq!(rows[30]["mean_sq_error"], "1.5");
    assert!(
        rows[30]["expected_sigma"]
            .as_str()
            .unwrap()
            .starts_with("0.67397975839")
    );
    assert!(v["certified_digits_min"].as_u64().unwrap() >= 25);
    assert_eq!(v["limit"]["bounded"], false);
    assert_eq!(v["bounded"], false);
    assert!(v["limit_w2_sq"].is_null());
    // A superlinear schedule: bounded, and the limit exceeds every E[W2^2_n] (it increases).
    let v = json(&collapse(&[
        "theory",
        "gaussian",
        "--samples",
        "20",
        "--schedule",
        "power:2",
        "--generations",
        "200",
        "--digits",
        "12",
        "--json",
    ]));
    assert_eq!(v["bounded"], true);
    let limit: f64 = v["limit_w2_sq"].as_str().unwrap().parse().unwrap();
    let last: f64 = v["rows"][200]["expected_w2_sq"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last < limit && limit < last * 1.01, "{last} {limit}");
}

#[test]
fn simulate_json_contract_and_thread_independence() {
    let dir = scratch_dir("threads");
    let run = |threads: &str, file: &str| {
        let path = dir.join(file);
        let out = collapse(&[
            "simulate",
            "gaussian",
            "--samples",
            "10",
            "--generations",
            "12",
            "--chains",
            "3001",
            "--seed",
            "5",
            "--threads",
            threads,
            "--json",
            "--out",
            path.to_str().unwrap(),
        ]);
        (json(&out), out.stdout, std::fs::read(&path).unwrap())
    };
    let (v, stdout1, parquet1) = run("1", "one.parquet");
    let (_, stdout2, parquet2) = run("2", "two.parquet");
    assert_eq!(stdout1, stdout2, "JSON differs between 1 and 2 threads");
    assert_eq!(
        parquet1, parquet2,
        "Parquet differs between 1 and 2 threads"
    );
    assert_eq!(&parquet1[..4], b"PAR1");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 13);
    for row in rows {
        for k in [
            "variance",
            "sigma",
            "log_variance",
            "mean_sq_error",
            "w2_sq",
        ] {
            assert!(
                row[k]["mean"].is_number() && row[k]["stderr"].is_number(),
                "{k}"
            );
        }
        let f = row["collapsed_fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f));
    }
    // Sufficient statistics give the same shape.
    let out = collapse(&[
        "simulate",
        "gaussian",
        "--samples",
        "10",
        "--generations",
        "3",
        "--chains",
        "10",
        "--seed",
        "1",
        "--method",
        "sufficient",
        "--json",
    ]);
    assert_eq!(json(&out)["rows"].as_array().unwrap().len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let dir = scratch_dir("bad");
    let out_file = dir.join("result.parquet");
    let out = out_file.to_str().unwrap();
    let sim = |extra: &[&str]| {
        let mut a = vec![
            "simulate",
            "gaussian",
            "--generations",
            "5",
            "--chains",
            "10",
            "--seed",
            "1",
            "--out",
            out,
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let th = |extra: &[&str]| {
        let mut a = vec!["theory", "gaussian", "--generations", "5"];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let cases: Vec<Vec<String>> = vec![
        sim(&["--samples", "1"]),
        sim(&["--samples", "0"]),
        sim(&["--samples", "-3"]),
        sim(&["--samples", "abc"]),
        sim(&["--samples", "10", "--chains", "0"]),
        sim(&["--samples", "10", "--sigma", "NaN"]),
        sim(&["--samples", "10", "--sigma", "0"]),
        sim(&["--samples", "10", "--sigma", "-1"]),
        sim(&["--samples", "10", "--sigma", "inf"]),
        sim(&["--samples", "10", "--schedule", "cubic"]),
        sim(&["--samples", "10", "--schedule", "power:x"]),
        sim(&["--samples", "10", "--method", "magic"]),
        sim(&["--samples", "10", "--estimator", "biased"]),
        sim(&["--samples", "10", "--threads", "0"]),
        sim(&["--samples", "99999999999999999999999"]),
        th(&["--samples", "10", "--digits", "0"]),
        th(&["--samples", "10", "--digits", "100000"]),
        th(&["--samples", "10", "--generations", "0"]),
        th(&["--samples", "10", "--schedule", "geometric:1e300"]),
        th(&["--schedule", "constant"]),
        vec![
            "theory".into(),
            "gaussian".into(),
            "--samples".into(),
            "10".into(),
        ],
        vec![
            "simulate".into(),
            "gaussian".into(),
            "--samples".into(),
            "10".into(),
            "--generations".into(),
            "5".into(),
            "--chains".into(),
            "10".into(),
            "--seed".into(),
            "1".into(),
            "--out".into(),
            dir.join("no/such/dir/x.parquet").to_str().unwrap().into(),
        ],
        vec![
            "report".into(),
            "--scale".into(),
            "huge".into(),
            "--out".into(),
            dir.join("r").to_str().unwrap().into(),
        ],
        vec!["frobnicate".into()],
        [
            "theory",
            "gaussian",
            "--samples",
            "10",
            "--generations",
            "99999999",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&collapse(&refs), &format!("{args:?}"));
        assert!(!out_file.exists(), "{args:?} left a file");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn smoke_report_is_complete() {
    let dir = scratch_dir("report");
    let o = collapse(&["report", "--scale", "smoke", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("worst |z|"));
    let md = std::fs::read_to_string(dir.join("index.md")).unwrap();
    assert!(md.contains("scale `smoke`"));
    for section in [
        "gaussian",
        "markov",
        "mvn",
        "schedules",
        "strategies",
        "gmm",
    ] {
        let parquet = dir.join(format!("{section}/comparison.parquet"));
        assert!(
            std::fs::metadata(&parquet)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "{}",
            parquet.display()
        );
        let csv = std::fs::read_to_string(dir.join(format!("{section}/comparison.csv"))).unwrap();
        assert!(
            csv.starts_with("experiment,quantity,generation,theory,empirical,stderr,z,mc_feasible"),
            "{section}"
        );
    }
    // The gmm section: the paper's contour panel and the functional vs statistical figure.
    for file in ["gmm-paper-contours.svg", "gmm-error-kinds-l2.svg"] {
        let path = dir.join("gmm").join(file);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "{}",
            path.display()
        );
    }
    // The markov section: its heading, the survival-by-rank and absorption figures inlined.
    assert!(html.contains("Categorical resampling (Wright–Fisher)"));
    for stem in ["survival_by_rank", "absorbed", "absorption-time-vs-samples"] {
        assert!(
            std::fs::read_dir(dir.join("markov")).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(stem)),
            "{stem}"
        );
    }
    assert!(md.contains("markov-zipf1.1"));
    // The mvn, schedules and strategies sections: headings, the phase diagram's table, and the
    // figures named in the issue.
    for heading in [
        "Multivariate Gaussian (mvn)",
        "Sample-size schedules",
        "Data strategies",
    ] {
        assert!(html.contains(heading) && md.contains(heading), "{heading}");
    }
    assert!(
        std::fs::metadata(dir.join("schedules/phase.parquet"))
            .unwrap()
            .len()
            > 0
    );
    let phase = std::fs::read_to_string(dir.join("schedules/phase.csv")).unwrap();
    assert_eq!(phase.lines().count(), 1 + 9, "P = 0, 0.25, ..., 2");
    for (section, stem) in [
        ("mvn", "mvn-d3-sufficient-constant-m20-log_det"),
        ("mvn", "mvn-d3-sufficient-constant-m20-eigenvalues"),
        ("mvn", "mvn-d3-sufficient-constant-m20-mean_sq_error"),
        ("mvn", "mvn-d10-sufficient-constant-m100-eigenvalues"),
        ("schedules", "schedules-phase-w2_sq"),
        ("strategies", "strategies-mean_sq_error"),
        ("strategies", "strategies-variance"),
        ("strategies", "strategies-w2_sq"),
    ] {
        for ext in ["svg", "png"] {
            let f = dir.join(format!("{section}/{stem}.{ext}"));
            assert!(f.exists(), "{}", f.display());
        }
    }
    // Every compared pair of the smoke report agrees within 5 standard errors.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let worst: f64 = stdout
        .split("worst |z| = ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(worst < 5.0, "{stdout}");
    // The vae section: heading, tables, figures, and seed 20240724's grids (the first of the
    // smoke scale's two seeds, three generations) as PNG files referenced from index.md and
    // embedded in index.html.
    let heading = "VAE generations on real digits";
    assert!(html.contains(heading) && md.contains(heading));
    for file in [
        "vae.parquet",
        "summary.parquet",
        "vae-latent-std.svg",
        "vae-latent-std.png",
        "vae-heldout-neg-elbo.svg",
        "vae-class-entropy.svg",
    ] {
        let path = dir.join("vae").join(file);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "{}",
            path.display()
        );
    }
    for seed in [20_240_724, 20_240_725] {
        for generation in 0..3 {
            let png = format!("vae/grids/seed-{seed}-gen-{generation}.png");
            let bytes = std::fs::read(dir.join(&png)).unwrap();
            assert_eq!(bytes[..4], [0x89, b'P', b'N', b'G'], "{png}");
            assert_eq!(
                md.contains(&format!("]({png})")),
                seed == 20_240_724,
                "{png}"
            );
        }
    }
    assert_eq!(html.matches("href=\"data:image/png;base64,").count(), 3);
    assert!(md.contains("paper's recorded latent std") && md.contains("vae: 1 experiments"));
    // The lm section: both regimes' tables and the figures.
    let heading = "Language models on a real corpus";
    assert!(html.contains(heading) && md.contains(heading));
    for file in [
        "replace/lm.parquet",
        "replace/perplexities.parquet",
        "mix/summary.parquet",
        "mix/survival.parquet",
        "mix/samples.csv",
        "lm-test-perplexity.svg",
        "lm-test-perplexity.png",
        "lm-perplexity-histogram-0.svg",
        "lm-perplexity-histogram-1.svg",
        "lm-surviving-types.svg",
        "lm-survival-by-rank.svg",
    ] {
        let path = dir.join("lm").join(file);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "{}",
            path.display()
        );
    }
    assert!(md.contains("lm: 2 experiments"), "{md}");
    // No temporary files left behind in any section.
    for section in [
        "gaussian",
        "markov",
        "mvn",
        "schedules",
        "strategies",
        "vae",
        "vae/grids",
        "lm",
        "lm/replace",
        "lm/mix",
        "lm-transformer",
        "lm-transformer/replace",
        "lm-transformer/mix",
    ] {
        assert!(
            !std::fs::read_dir(dir.join(section)).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')),
            "{section}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the VAE's digits the report stops at once with one line naming the fetch command,
/// and writes nothing.
#[test]
fn report_without_digits_names_the_fetch_command() {
    let dir = scratch_dir("report-no-data");
    let (cache, out) = (dir.join("empty-cache"), dir.join("out"));
    std::fs::create_dir_all(&cache).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_collapse"))
        .args(["report", "--scale", "smoke", "--out", out.to_str().unwrap()])
        .env("COLLAPSE_DATA", &cache)
        .output()
        .expect("run collapse");
    assert_refused(&o, "report without mnist5k");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("collapse data fetch mnist5k"), "{stderr}");
    assert!(!out.exists());
    // With the digits but not the corpus, it names the corpus's fetch command.
    let digits = collapse_sim::data::path(&collapse_sim::data::cache_dir(), "mnist5k");
    if digits.exists() {
        std::fs::copy(&digits, cache.join("mnist5k.digits")).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_collapse"))
            .args(["report", "--scale", "smoke", "--out", out.to_str().unwrap()])
            .env("COLLAPSE_DATA", &cache)
            .output()
            .expect("run collapse");
        assert_refused(&o, "report without brown");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("collapse data fetch brown"), "{stderr}");
        assert!(!out.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn markov_theory_json_contract_and_bad_input() {
    let out = collapse(&[
        "theory",
        "markov",
        "--samples",
        "12",
        "--categories",
        "2",
        "--init",
        "probs:0.25,0.75",
        "--generations",
        "8",
        "--digits",
        "20",
        "--json",
    ]);
    let v = json(&out);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row["n"], n);
        for key in [
            "expected_heterozygosity",
            "expected_surviving",
            "prob_absorbed",
        ] {
            let text = row[key].as_str().unwrap_or_else(|| panic!("{key} at {n}"));
            assert!(text.parse::<f64>().is_ok(), "{key}: {text}");
        }
    }
    // E[H_n] = (1 - 1/M)^n (1 - sum q^2) with sum q^2 = 5/8.
    let h8: f64 = rows[8]["expected_heterozygosity"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((h8 - (11.0f64 / 12.0).powi(8) * 0.375).abs() < 1e-15);
    let a = &v["absorption"];
    for key in ["expected_time", "expected_time_diffusion", "var_time"] {
        assert!(
            a[key].as_str().unwrap().parse::<f64>().unwrap() > 0.0,
            "{key}"
        );
    }
    // More than two categories and a full chain too large even lumped by symmetry (partitions
    // of 200 into at most 4 parts: 59,823 states): no exact absorption, keys present and null.
    let v = json(&collapse(&[
        "theory",
        "markov",
        "--samples",
        "200",
        "--categories",
        "4",
        "--generations",
        "3",
        "--json",
    ]));
    assert!(v["rows"][3]["prob_absorbed"].is_null());
    assert!(v["absorption"]["expected_time"].is_null());

    let th = |extra: &[&str]| {
        let mut a = vec!["theory", "markov"];
        a.extend_from_slice(extra);
        if !extra.contains(&"--generations") {
            a.extend_from_slice(&["--generations", "5"]);
        }
        collapse(&a)
    };
    for case in [
        th(&["--samples", "0", "--categories", "2"]),
        th(&["--samples", "10", "--categories", "0"]),
        th(&[
            "--samples",
            "10",
            "--categories",
            "2",
            "--init",
            "probs:0.5,0.6",
        ]),
        th(&[
            "--samples",
            "10",
            "--categories",
            "3",
            "--init",
            "probs:0.5,0.5",
        ]),
        th(&[
            "--samples",
            "10",
            "--categories",
            "2",
            "--init",
            "probs:-0.5,1.5",
        ]),
        th(&[
            "--samples",
            "10",
            "--categories",
            "2",
            "--init",
            "probs:NaN,1",
        ]),
        th(&["--samples", "10", "--categories", "2", "--init", "zipf:abc"]),
        th(&["--samples", "10", "--categories", "2", "--init", "cauchy"]),
        th(&["--samples", "10", "--categories", "2", "--digits", "0"]),
        th(&["--samples", "100000", "--categories", "2"]),
        th(&["--samples", "10", "--categories", "2", "--generations", "0"]),
    ] {
        assert_refused(&case, "markov theory");
    }
}

#[test]
fn markov_simulate_json_contract_and_thread_independence() {
    let args = |threads: &str| {
        collapse(&[
            "simulate",
            "markov",
            "--samples",
            "20",
            "--categories",
            "3",
            "--init",
            "zipf:1.1",
            "--generations",
            "6",
            "--chains",
            "300",
            "--seed",
            "9",
            "--threads",
            threads,
            "--json",
        ])
    };
    let (one, two) = (args("1"), args("2"));
    assert_eq!(
        one.stdout, two.stdout,
        "bytes differ between 1 and 2 threads"
    );
    let v = json(&one);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    for row in rows {
        for key in ["surviving", "heterozygosity", "entropy"] {
            assert!(
                row[key]["mean"].is_f64() && row[key]["stderr"].is_f64(),
                "{key}"
            );
        }
        let f = row["absorbed_fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f));
    }
    assert_eq!(rows[0]["surviving"]["mean"], 3.0);
    let t = &v["absorption_time"];
    let absorbed = t["absorbed_chains"].as_u64().unwrap();
    assert!(absorbed <= 300);
    let histogram: Vec<u64> = t["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(histogram.len(), 7);
    assert_eq!(histogram.iter().sum::<u64>(), absorbed);
    let bad = collapse(&[
        "simulate",
        "markov",
        "--samples",
        "20",
        "--categories",
        "3",
        "--generations",
        "6",
        "--chains",
        "0",
        "--seed",
        "1",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}

/// A reader that stops early (`collapse ... | head -1`) ends the run quietly: exit code 0 and
/// nothing on stderr, where an unchecked `println!` would panic on the closed pipe (3000 rows
/// are far more than a pipe buffer holds).
#[test]
fn closed_stdout_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_collapse"))
        .args([
            "theory",
            "markov",
            "--samples",
            "10",
            "--categories",
            "2",
            "--generations",
            "3000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run collapse");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("markov theory"), "{first}");
    // The reading end is dropped here, with most of the table still to be printed.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `theory --json` gives every printed value an enclosure {lo, hi} that brackets it, with a
/// width consistent with the digits claimed as certified (checked for both processes, and for
/// the Markov chain both exact rationals and enclosures).
#[test]
fn theory_json_encloses_every_value() {
    let runs: [&[&str]; 3] = [
        &["gaussian", "--samples", "12", "--generations", "40"],
        &[
            "markov",
            "--samples",
            "9",
            "--categories",
            "2",
            "--generations",
            "30",
        ],
        &[
            "markov",
            "--samples",
            "20",
            "--categories",
            "3",
            "--init",
            "zipf:1",
            "--generations",
            "15",
        ],
    ];
    for args in runs {
        let mut full = vec!["theory"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--digits", "20", "--json"]);
        let v = json(&collapse(&full));
        let digits = v["certified_digits_min"].as_u64().unwrap() as i32;
        assert_eq!(digits, 20, "{args:?}");
        let mut checked = 0;
        let mut check = |value: &serde_json::Value, bounds: &serde_json::Value| {
            let number = |x: &serde_json::Value| x.as_str().unwrap().parse::<f64>().unwrap();
            let (x, lo, hi) = (number(value), number(&bounds["lo"]), number(&bounds["hi"]));
            assert!(lo <= x && x <= hi, "{args:?}: {lo} <= {x} <= {hi}");
            assert!(
                hi - lo <= 10f64.powi(2 - digits) * x.abs().max(1e-300) + f64::EPSILON * x.abs(),
                "{args:?}: [{lo}, {hi}] is too wide for {digits} digits"
            );
            checked += 1;
        };
        for row in v["rows"].as_array().unwrap() {
            for (name, bounds) in row["enclosures"].as_object().unwrap() {
                check(&row[name], bounds);
            }
        }
        if let Some(absorption) = v.get("absorption") {
            for (name, bounds) in absorption["enclosures"].as_object().unwrap() {
                if !bounds.is_null() {
                    check(&absorption[name], bounds);
                }
            }
        }
        assert!(checked >= 45, "{args:?}: only {checked} values");
    }
}

/// `collapse verify`: every check at the quick scale is proved (exit 0), the JSON lists each
/// check with its instances, and a bad scale is refused with exit code 2.
#[test]
fn verify_proves_the_quick_instances() {
    let v = json(&collapse(&["verify", "--scale", "quick", "--json"]));
    assert_eq!(v["failed"], 0);
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 15);
    for c in checks {
        assert_eq!(c["passed"], true, "{c}");
        assert!(c["instances"].as_u64().unwrap() > 0, "{c}");
    }
    let table = collapse(&["verify", "--scale", "quick"]);
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("\tproved\t")).count(),
        15
    );
    let bad = collapse(&["verify", "--scale", "huge"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

/// `theory mvn --json`: the documented keys as decimal strings with enclosures, d = 1 equal to
/// `theory gaussian`, and bad input refused with one line and exit code 2.
#[test]
fn mvn_theory_json_contract_and_bad_input() {
    let v = json(&collapse(&[
        "theory",
        "mvn",
        "--dim",
        "3",
        "--samples",
        "20",
        "--generations",
        "15",
        "--cov",
        "2,1,0.5",
        "--digits",
        "20",
        "--json",
    ]));
    assert_eq!(v["process"], "mvn");
    assert_eq!(v["dim"], 3);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 16);
    for key in [
        "mean_sq_error",
        "expected_log_det",
        "var_log_det",
        "w2_sq_lower_bound",
    ] {
        for row in rows {
            let text = row[key].as_str().unwrap();
            let value: f64 = text.parse().unwrap();
            let lo: f64 = row["enclosures"][key]["lo"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let hi: f64 = row["enclosures"][key]["hi"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(lo <= value && value <= hi, "{key}: {lo} {value} {hi}");
        }
    }
    // tr(Sigma) S_15 = 3.5 * 15 / 20 exactly; ln det Sigma = ln 1 = 0 at n = 0.
    assert_eq!(rows[15]["mean_sq_error"], "2.625");
    assert_eq!(rows[0]["expected_log_det"], "0");
    assert_eq!(v["det_collapses_almost_surely"], true);
    assert_eq!(v["lyapunov_exponents"].as_array().unwrap().len(), 3);

    // d = 1 reproduces the 1-D theory digit for digit.
    let args = [
        "--samples",
        "6",
        "--schedule",
        "linear",
        "--generations",
        "5",
    ];
    let one = json(&collapse(
        &[&["theory", "mvn", "--dim", "1", "--json"][..], &args[..]].concat(),
    ));
    let gauss = json(&collapse(
        &[&["theory", "gaussian", "--json"][..], &args[..]].concat(),
    ));
    for n in 0..=5 {
        let (a, b) = (&one["rows"][n], &gauss["rows"][n]);
        assert_eq!(a["mean_sq_error"], b["mean_sq_error"], "n={n}");
        assert_eq!(a["expected_log_det"], b["expected_log_variance"], "n={n}");
        assert_eq!(a["var_log_det"], b["var_log_variance"], "n={n}");
    }
    let summable = json(&collapse(&[
        "theory",
        "mvn",
        "--dim",
        "2",
        "--samples",
        "5",
        "--schedule",
        "power:1.5",
        "--generations",
        "3",
        "--json",
    ]));
    assert_eq!(summable["det_collapses_almost_surely"], false);
    assert_eq!(summable["bounded"], true);
    // 2 zeta(1.5) / 5 = 1.0450 up to the ceiling of the sizes.
    let limit: f64 = summable["limit_mean_sq_error"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (limit - 2.0 * 2.612_375_348_685_488 / 5.0).abs() < 0.01,
        "{limit}"
    );
    assert_eq!(v["bounded"], false);
    assert!(v["limit_mean_sq_error"].is_null());
    assert!(summable["lyapunov_exponents"].is_null());

    for bad in [
        &["--dim", "0", "--samples", "5", "--generations", "2"][..],
        &["--dim", "3", "--samples", "3", "--generations", "2"],
        &["--dim", "-1", "--samples", "5", "--generations", "2"],
        &[
            "--dim",
            "2",
            "--samples",
            "5",
            "--generations",
            "2",
            "--cov",
            "1",
        ],
        &[
            "--dim",
            "2",
            "--samples",
            "5",
            "--generations",
            "2",
            "--cov",
            "1,nan",
        ],
        &[
            "--dim",
            "2",
            "--samples",
            "5",
            "--generations",
            "2",
            "--cov",
            "1,-2",
        ],
        &[
            "--dim",
            "2",
            "--samples",
            "5",
            "--generations",
            "2",
            "--cov",
            "1,x",
        ],
        &["--dim", "2", "--samples", "5", "--generations", "0"],
        &[
            "--dim",
            "2",
            "--samples",
            "5",
            "--generations",
            "2",
            "--digits",
            "0",
        ],
        &["--dim", "2", "--schedule", "list:9,2", "--generations", "3"],
    ] {
        let out = collapse(&[&["theory", "mvn"][..], bad].concat());
        assert_refused(&out, &format!("{bad:?}"));
    }
}

/// `--strategy` on `theory gaussian` and `simulate gaussian` (proofs/strategies.md): the strategy
/// rows as certified decimal strings with enclosures, replace unchanged, simulations independent
/// of the thread count, and bad strategies refused with one line and exit code 2.
#[test]
fn strategy_cli_contract_and_bad_input() {
    let theory = |extra: &[&str]| {
        let mut a = vec![
            "theory",
            "gaussian",
            "--samples",
            "10",
            "--generations",
            "5",
        ];
        a.extend_from_slice(extra);
        collapse(&a)
    };
    let v = json(&theory(&[
        "--strategy",
        "mix:0.3",
        "--digits",
        "20",
        "--json",
    ]));
    assert_eq!(v["strategy"], "mix:0.3");
    assert_eq!(v["bounded"], true);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    // e_1 = sigma^2/M, e_2 = (49 e_1 + 3 + 7 v_1)/100 = 0.149; v_2 = (27 + 63 v_1 + 21 e_1)/90.
    assert_eq!(rows[1]["mean_sq_error"], "0.1");
    assert_eq!(rows[2]["mean_sq_error"], "0.149");
    assert!(
        rows[2]["expected_variance"]
            .as_str()
            .unwrap()
            .starts_with("1.0233333333")
    );
    // The fixed point: v* = 480/410, e* = (3 + 7 v*)/51.
    let st = &v["stationary"];
    assert!(
        st["mean_sq_error"]
            .as_str()
            .unwrap()
            .starts_with("0.21951219512195")
    );
    assert!(
        st["expected_variance"]
            .as_str()
            .unwrap()
            .starts_with("1.17073170731707")
    );
    for row in rows {
        for k in ["mean_sq_error", "expected_variance", "w2_sq_lower_bound"] {
            let x: f64 = row[k].as_str().unwrap().parse().unwrap();
            let lo: f64 = row["enclosures"][k]["lo"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let hi: f64 = row["enclosures"][k]["hi"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(lo <= x && x <= hi, "{k}: {lo} <= {x} <= {hi}");
            assert_eq!(row["certified_digits"][k], 20);
        }
    }
    // Past the exact-rational range: balls, still certified; accumulate-subsample is unbounded.
    let v = json(&collapse(&[
        "theory",
        "gaussian",
        "--samples",
        "4",
        "--generations",
        "600",
        "--strategy",
        "accumulate-subsample",
        "--digits",
        "15",
        "--json",
    ]));
    assert_eq!(v["exact_rationals"], false);
    assert_eq!(v["bounded"], false);
    assert_eq!(v["certified_digits_min"], 15);
    assert!(v["stationary"].is_null());
    // replace is the paper's theory, unchanged.
    let plain = theory(&["--json"]);
    let replace = theory(&["--strategy", "replace", "--json"]);
    assert_eq!(plain.stdout, replace.stdout);
    assert_eq!(json(&plain)["strategy"], "replace");
    let text = theory(&["--strategy", "keep:0.2"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("stationary values"));
    // Simulations: the same bytes for 1 and 2 threads, every strategy.
    for strategy in ["accumulate", "accumulate-subsample", "mix:0.5", "keep:0.3"] {
        let sim = |threads: &str| {
            collapse(&[
                "simulate",
                "gaussian",
                "--samples",
                "6",
                "--generations",
                "4",
                "--chains",
                "600",
                "--seed",
                "3",
                "--strategy",
                strategy,
                "--threads",
                threads,
                "--json",
            ])
        };
        let (a, b) = (sim("1"), sim("2"));
        assert_eq!(a.stdout, b.stdout, "{strategy}");
        let v = json(&a);
        assert_eq!(v["strategy"], strategy);
        assert_eq!(v["rows"].as_array().unwrap().len(), 5);
    }
    // Bad strategies: one line on stderr, exit code 2, nothing written.
    let dir = scratch_dir("strategy");
    let out_file = dir.join("run.parquet");
    let out = out_file.to_str().unwrap();
    let mut cases: Vec<Vec<&str>> = Vec::new();
    for bad in [
        "mix:",
        "keep:",
        "keep:abc",
        "mix:1.5",
        "mix:NaN",
        "mix:-0.5",
        "keep:-1",
        "mix:inf",
        "keep:1e400",
        "accumulate:1",
        "replace:",
        "bogus",
        "mix",
    ] {
        cases.push(vec![
            "theory",
            "gaussian",
            "--samples",
            "10",
            "--generations",
            "5",
            "--strategy",
            bad,
        ]);
        cases.push(vec![
            "simulate",
            "gaussian",
            "--samples",
            "10",
            "--generations",
            "5",
            "--chains",
            "10",
            "--seed",
            "1",
            "--out",
            out,
            "--strategy",
            bad,
        ]);
    }
    // keep:0.5 keeps 5 points but M_1 = 3; accumulate-subsample needs the exact method.
    cases.push(vec![
        "theory",
        "gaussian",
        "--schedule",
        "list:10,3",
        "--generations",
        "3",
        "--strategy",
        "keep:0.5",
    ]);
    cases.push(vec![
        "simulate",
        "gaussian",
        "--samples",
        "10",
        "--generations",
        "5",
        "--chains",
        "10",
        "--seed",
        "1",
        "--out",
        out,
        "--strategy",
        "accumulate-subsample",
        "--method",
        "sufficient",
    ]);
    for args in cases {
        assert_refused(&collapse(&args), &format!("{args:?}"));
        assert!(!out_file.exists(), "{args:?} left a file");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--truth`: the theory prints the shape-free moments and rho; the simulation starts from D0,
/// under any strategy; bad truths get one line and exit code 2.
#[test]
fn truth_cli_contract_and_bad_input() {
    let base = ["--samples", "10", "--generations", "4"];
    let v = json(&collapse(
        &[
            &["theory", "gaussian", "--truth", "uniform", "--json"][..],
            &base[..],
        ]
        .concat(),
    ));
    assert_eq!(v["truth"], "uniform");
    assert_eq!(v["comonotone_correlation"]["closed_form"], true);
    let rho = v["comonotone_correlation"]["rho"].as_f64().unwrap();
    assert!((rho - (3.0 / std::f64::consts::PI).sqrt()).abs() < 1e-15);
    assert_eq!(v["rows"][4]["mean_sq_error"], "0.4");
    assert_eq!(v["rows"][4]["expected_variance"], "1");
    let sim = json(&collapse(
        &[
            &["simulate", "gaussian", "--truth", "laplace", "--json"][..],
            &["--chains", "500", "--seed", "3"][..],
            &base[..],
        ]
        .concat(),
    ));
    assert_eq!(sim["truth"], "laplace");
    assert_eq!(sim["rows"].as_array().unwrap().len(), 5);
    for bad in [
        "student:2",
        "student:0.5",
        "student:nan",
        "student:inf",
        "student:",
        "student",
        "cauchy",
        "laplace:2",
    ] {
        for command in ["theory", "simulate"] {
            let mut args = vec![command, "gaussian", "--truth", bad];
            args.extend_from_slice(&base);
            if command == "simulate" {
                args.extend_from_slice(&["--chains", "10", "--seed", "1"]);
            }
            assert_refused(&collapse(&args), &format!("{args:?}"));
        }
    }
    // A non-normal truth under another strategy (proofs/strategies.md §11): the theory's moments
    // are the normal truth's, its W2^2 bound gains 1 - rho^2 (sigma = 1) from generation 1 on,
    // and the simulation runs from D0; a bad truth is still refused with a strategy.
    let theory = |truth: &'static str| {
        json(&collapse(
            &[
                &["theory", "gaussian", "--truth", truth, "--json"][..],
                &["--strategy", "mix:0.1"][..],
                &base[..],
            ]
            .concat(),
        ))
    };
    let (laplace, normal) = (theory("laplace"), theory("normal"));
    assert_eq!(laplace["truth"], "laplace");
    assert_eq!(laplace["strategy"], "mix:0.1");
    let rho = laplace["comonotone_correlation"]["rho"].as_f64().unwrap();
    assert!(rho > 0.9 && rho < 0.99, "{rho}");
    let num = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    for n in 0..=4 {
        let (l, g) = (&laplace["rows"][n], &normal["rows"][n]);
        assert_eq!(l["mean_sq_error"], g["mean_sq_error"], "n = {n}");
        assert_eq!(l["expected_variance"], g["expected_variance"], "n = {n}");
        assert_eq!(g["w2_sq_lower_bound"], g["mean_sq_error"], "n = {n}");
        let gain = num(&l["w2_sq_lower_bound"]) - num(&l["mean_sq_error"]);
        let floor = if n == 0 { 0.0 } else { 1.0 - rho * rho };
        assert!((gain - floor).abs() < 1e-9, "n = {n}: {gain} vs {floor}");
    }
    let sim = json(&collapse(
        &[
            &["simulate", "gaussian", "--truth", "laplace", "--json"][..],
            &["--strategy", "accumulate", "--chains", "500", "--seed", "3"][..],
            &base[..],
        ]
        .concat(),
    ));
    assert_eq!(
        (&sim["truth"], &sim["strategy"]),
        (&"laplace".into(), &"accumulate".into())
    );
    assert_eq!(sim["rows"].as_array().unwrap().len(), 5);
    assert!(sim["rows"][4]["w2_sq"]["mean"].as_f64().unwrap() > 0.0);
    let args = [
        &[
            "simulate",
            "gaussian",
            "--truth",
            "student:2",
            "--strategy",
            "mix:0.1",
        ][..],
        &["--chains", "10", "--seed", "1"][..],
        &base[..],
    ]
    .concat();
    assert_refused(&collapse(&args), "student:2 with mix:0.1");
}

/// `--strategy` on `theory mvn` and `simulate mvn` (proofs/strategies.md §10): the theory is the
/// projected one-dimensional theory times tr Sigma, the simulation is independent of the thread
/// count, and bad strategies get one line and exit code 2.
#[test]
fn mvn_strategy_cli_contract_and_bad_input() {
    let base = ["--dim", "3", "--samples", "10", "--generations", "5"];
    let args = |head: &[&'static str], extra: &[&'static str]| -> Vec<&'static str> {
        [head, &base[..], extra].concat()
    };
    let t = json(&collapse(&args(
        &["theory", "mvn"],
        &["--strategy", "mix:0.3", "--cov", "2,0.5,1", "--json"],
    )));
    let scalar = json(&collapse(&[
        "theory",
        "gaussian",
        "--samples",
        "10",
        "--generations",
        "5",
        "--strategy",
        "mix:0.3",
        "--json",
    ]));
    assert_eq!(t["strategy"], "mix:0.3");
    assert_eq!(t["bounded"], true);
    let number = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    for (row, one) in t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(scalar["rows"].as_array().unwrap())
    {
        let (e, v) = (
            number(&row["mean_sq_error"]),
            number(&row["expected_trace"]),
        );
        let (e1, v1) = (
            number(&one["mean_sq_error"]),
            number(&one["expected_variance"]),
        );
        assert!(
            (e - 3.5 * e1).abs() <= 1e-12 * e.max(1.0),
            "{e} vs 3.5 x {e1}"
        );
        assert!((v - 3.5 * v1).abs() <= 1e-12 * v, "{v} vs 3.5 x {v1}");
        assert!(row["expected_log_det"].is_null());
    }
    for strategy in ["accumulate", "keep:0.2", "accumulate-subsample"] {
        // accumulate-subsample needs the points: exact only.
        let method = if strategy == "accumulate-subsample" {
            "exact"
        } else {
            "sufficient"
        };
        let sim = |threads: &'static str| {
            collapse(&args(
                &["simulate", "mvn"],
                &[
                    "--strategy",
                    strategy,
                    "--chains",
                    "300",
                    "--seed",
                    "4",
                    "--threads",
                    threads,
                    "--method",
                    method,
                    "--json",
                ],
            ))
        };
        let (one, two) = (sim("1"), sim("2"));
        let value = json(&one);
        assert_eq!(value["strategy"], strategy);
        assert_eq!(value["rows"].as_array().unwrap().len(), 6);
        assert_eq!(one.stdout, two.stdout, "{strategy}");
    }
    for bad in ["mix:1.5", "keep:nan", "keep:-0.1", "nope"] {
        let out = collapse(&args(
            &["simulate", "mvn"],
            &["--strategy", bad, "--chains", "10", "--seed", "1"],
        ));
        assert_refused(&out, bad);
    }
    let out = collapse(&args(
        &["simulate", "mvn"],
        &[
            "--strategy",
            "accumulate-subsample",
            "--method",
            "sufficient",
            "--chains",
            "10",
            "--seed",
            "1",
        ],
    ));
    assert_refused(&out, "accumulate-subsample with sufficient statistics");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--method exact"));
}

/// `simulate gmm`: the JSON rows of the issue's contract, the same bytes for any thread count,
/// a truth read from a file, and bad input (K < 1, M < K (D + 1), a truth file that does not
/// parse, weights not summing to 1, a truth of the wrong dimension, a pool beyond the cap).
#[test]
fn gmm_simulate_contract_and_bad_input() {
    let base = [
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
        "20",
        "--seed",
        "3",
        "--heldout",
        "200",
        "--json",
    ];
    let run = |extra: &[&str]| collapse(&[&base[..], extra].concat());
    let (one, two) = (run(&["--threads", "1"]), run(&["--threads", "2"]));
    let value = json(&one);
    assert_eq!(one.stdout, two.stdout);
    assert_eq!(value["process"], "gmm");
    let rows = value["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        for key in ["l2_sq", "heldout_loglik", "distance", "min_eigenvalue"] {
            assert!(row[key]["mean"].is_f64(), "{key}: {row}");
            assert!(row[key]["stderr"].is_f64(), "{key}: {row}");
        }
        let vanished = row["vanished_fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&vanished));
    }
    assert_eq!(rows[0]["l2_sq"]["mean"], 0.0);
    assert!(rows[4]["l2_sq"]["mean"].as_f64().unwrap() > 0.0);
    let dir = scratch_dir("gmm");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = write(
        "good.json",
        r#"{"weights": [0.5, 0.5], "means": [[-2, 0], [2, 0]], "covs": [[[1, 0], [0, 1]], [[1, 0.2], [0.2, 1]]]}"#,
    );
    let value = json(&run(&["--truth", &good]));
    assert_eq!(value["truth_components"], 2);
    // Two components on both sides: MW2 by the transportation simplex, > 0 after a fit.
    assert!(value["rows"][1]["distance"]["mean"].as_f64().unwrap() > 0.0);
    // Generation 0 is the truth: zero up to the rounding of the matrix square roots.
    assert!(value["rows"][0]["distance"]["mean"].as_f64().unwrap() < 1e-12);
    let bad_json = write("bad.json", "{\"weights\": [1.0], ");
    let bad_sum = write(
        "sum.json",
        r#"{"weights": [0.5, 0.6], "means": [[0, 0], [1, 1]], "covs": [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]}"#,
    );
    let three_d = write(
        "three.json",
        r#"{"weights": [1], "means": [[0, 0, 0]], "covs": [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]}"#,
    );
    let missing = dir.join("missing.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--components", "0"], "K = 0"),
        (vec!["--samples", "5"], "M < K (D + 1)"),
        (vec!["--truth", &bad_json], "truth not JSON"),
        (vec!["--truth", &bad_sum], "weights sum to 1.1"),
        (vec!["--truth", &three_d], "truth of the wrong dimension"),
        (vec!["--truth", missing.to_str().unwrap()], "missing truth"),
        (
            vec![
                "--strategy",
                "accumulate",
                "--chains",
                "100000",
                "--samples",
                "1000",
            ],
            "an accumulated pool beyond the memory cap",
        ),
        (vec!["--strategy", "mix:nan"], "mix:nan"),
        (vec!["--heldout", "0"], "no held-out sample"),
        (vec!["--chains", "0"], "no chains"),
    ];
    for (extra, what) in cases {
        let mut args: Vec<&str> = vec!["simulate", "gmm", "--dim", "2", "--generations", "2"];
        let has = |flag: &str| extra.contains(&flag);
        if !has("--components") {
            args.extend(["--components", "2"]);
        }
        if !has("--samples") {
            args.extend(["--samples", "40"]);
        }
        if !has("--chains") {
            args.extend(["--chains", "2"]);
        }
        args.extend(["--seed", "1"]);
        args.extend(extra.iter().copied());
        assert_refused(&collapse(&args), what);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
