//! Time to certify E[sigma_n], E[ln sigma_n^2] and E[W2^2] at one generation, with Arb
//! (python-flint) and mpmath measured in the same run (issue 4, "Performance").
//!
//! `cargo bench --bench certify` prints criterion's estimates of
//! `certified_quantity_at_generation` (each quantity alone) and `certified_at_generation` (the
//! three together) for M = 100, n = 10^4, unbiased, sigma = 1, at 50 and at 1000 significant
//! digits, and of `verify_markov` restricted to the two-type chains M <= 30 (the exact rational
//! checks of `collapse verify`). Then, when `python3 -c "import flint, mpmath"` succeeds, it
//! times the same computations here and in `benches/peers/certify_peers.py` in alternating
//! rounds, checks that the peers' leading digits agree with ours, and prints the ratios.
//! `-- no-criterion-match` runs only the latter.

use collapse_analysis::gaussian::{
    GenerationQuantity, certified_at_generation, certified_quantity_at_generation,
};
use collapse_analysis::verify::{VerifyScale, verify_markov};
use collapse_analysis::{Ball, Estimator, GaussianSpec, Schedule};
use criterion::{BenchmarkId, Criterion};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

const SAMPLES: u64 = 100;
const GENERATION: u64 = 10_000;
const DIGITS: [u32; 2] = [50, 1000];
/// Leading significant digits compared with the peers' values (they print 30, rounded).
const COMPARED_DIGITS: usize = 25;

fn spec() -> GaussianSpec {
    GaussianSpec::new(
        Schedule::constant(SAMPLES),
        Estimator::Unbiased,
        1.0,
        GENERATION,
    )
    .expect("valid")
}

/// A benchmarked computation: one quantity alone, or the three together.
#[derive(Debug, Clone, Copy)]
enum Job {
    One(GenerationQuantity),
    All,
}

impl Job {
    const ALL: [Job; 4] = [
        Job::One(GenerationQuantity::ExpectedSigma),
        Job::One(GenerationQuantity::ExpectedLogVariance),
        Job::One(GenerationQuantity::ExpectedW2Sq),
        Job::All,
    ];
    /// The peer script's key.
    fn name(self) -> &'static str {
        match self {
            Job::One(q) => q.name(),
            Job::All => "all",
        }
    }
    /// Runs the job and returns its values, each certified to `digits`.
    fn run(self, spec: &GaussianSpec, digits: u32) -> Vec<Ball> {
        match self {
            Job::One(q) => {
                vec![certified_quantity_at_generation(spec, GENERATION, q, digits).expect("valid")]
            }
            Job::All => {
                let c = certified_at_generation(spec, GENERATION, digits).expect("valid");
                vec![c.expected_sigma, c.expected_log_variance, c.expected_w2_sq]
            }
        }
    }
}

fn certify(c: &mut Criterion) {
    let spec = spec();
    let mut group = c.benchmark_group("certify_m100_n1e4_unbiased");
    for digits in DIGITS {
        for job in Job::ALL {
            group.bench_with_input(
                BenchmarkId::new(job.name(), format!("{digits}_digits")),
                &digits,
                |b, &d| b.iter(|| black_box(job.run(&spec, black_box(d)))),
            );
        }
    }
    group.finish();
}

/// `VerifyScale::full()` restricted to the two-type chains K = 2, M = 1..=30.
fn two_type_scale() -> VerifyScale {
    VerifyScale {
        full: Vec::new(),
        ..VerifyScale::full()
    }
}

/// The exact-rational Markov checks of `collapse verify` for K = 2, M = 1..=30 (about 8 s a
/// run here, so criterion's minimum of 10 samples takes about 80 s); prints each claim's share.
fn verify(c: &mut Criterion) {
    let scale = two_type_scale();
    let mut group = c.benchmark_group("verify");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    let mut last = None;
    group.bench_function("markov_two_type_m30", |b| {
        b.iter(|| {
            let checks = verify_markov(black_box(&scale));
            assert!(checks.iter().all(|c| c.passed()));
            last = Some(checks);
        })
    });
    group.finish();
    if let Some(checks) = last {
        println!("verify_markov, K = 2, M = 1..=30, by claim (last run):");
        for c in checks {
            println!(
                "  {:>8.3} s  {} instances  {}: {}",
                c.seconds, c.instances, c.claim, c.statement
            );
        }
    }
}

/// Fastest and median time of one call of `f`, repeated for at least `budget` (and 5 calls),
/// after one warm-up call: the peer script's method.
fn time_calls(budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    (best(&times), median(times))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

fn best(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The first `count` significant digits of a decimal ("-1.0793e-11" -> "10793"), with its
/// sign; None for an empty string.
fn leading_digits(text: &str, count: usize) -> Option<String> {
    let negative = text.trim_start().starts_with('-');
    let mantissa = text.split(['e', 'E']).next()?;
    let digits: String = mantissa
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|&c| c == '0')
        .take(count)
        .collect();
    (!digits.is_empty()).then(|| format!("{}{digits}", if negative { "-" } else { "" }))
}

fn peers_available() -> bool {
    Command::new("python3")
        .args(["-c", "import flint, mpmath"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_peers() -> Option<serde_json::Value> {
    let digits: Vec<String> = DIGITS.iter().map(u32::to_string).collect();
    let out = Command::new("python3")
        .arg("benches/peers/certify_peers.py")
        .args(["--samples", &SAMPLES.to_string()])
        .args(["--generation", &GENERATION.to_string()])
        .args([
            "--estimator",
            "unbiased",
            "--min-seconds",
            "0.2",
            "--digits",
        ])
        .args(&digits)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "certify_peers.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Rounds of the peer comparison: each times ours and runs the peer script once, so that a
/// slow spell of this shared machine hits both sides.
const ROUNDS: usize = 3;
const LIBRARIES: [(&str, &str); 2] = [("arb", "Arb (python-flint)"), ("mpmath", "mpmath")];

fn peer_comparison() {
    println!(
        "\ncertify peer comparison: M = {SAMPLES}, n = {GENERATION}, unbiased, sigma = 1; \
         {ROUNDS} alternating rounds; fastest call of each (warm caches)"
    );
    if !peers_available() {
        println!(
            "  peers unavailable: python3 with python-flint and mpmath \
             (pip install python-flint mpmath)"
        );
        return;
    }
    let spec = spec();
    // ours[digits][job] and peers[round]: per-round fastest calls.
    let mut ours: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); Job::ALL.len()]; DIGITS.len()];
    let mut peers: Vec<serde_json::Value> = Vec::new();
    for _ in 0..ROUNDS {
        for (di, &digits) in DIGITS.iter().enumerate() {
            for (ji, job) in Job::ALL.iter().enumerate() {
                let (fastest, _) = time_calls(Duration::from_millis(200), || {
                    black_box(job.run(&spec, digits));
                });
                ours[di][ji].push(fastest);
            }
        }
        match run_peers() {
            Some(v) => peers.push(v),
            None => {
                println!("  peers failed to run; no comparison");
                return;
            }
        }
    }
    let versions = &peers[0]["versions"];
    println!(
        "  python-flint {}, mpmath {}",
        versions["arb"].as_str().unwrap_or("?"),
        versions["mpmath"].as_str().unwrap_or("?")
    );
    let mut mismatches = 0;
    for (di, &digits) in DIGITS.iter().enumerate() {
        let values = Job::All.run(&spec, digits);
        let certified = values.iter().map(Ball::certified_digits).min().unwrap_or(0);
        println!(
            "\n  {digits} digits (ours: {} bits, every value certifies {certified} digits)",
            values[0].prec()
        );
        println!(
            "    {:<22} {:>11} | {:>11} {:>8} {:>8} | {:>11} {:>8} {:>8}",
            "quantity", "ours", "Arb", "ours/Arb", "paired", "mpmath", "mp/ours", "paired"
        );
        for (ji, job) in Job::ALL.iter().enumerate() {
            let our_times = &ours[di][ji];
            let mut row = format!("    {:<22} {:>11}", job.name(), seconds(best(our_times)));
            for (lib, _) in LIBRARIES {
                let times: Option<Vec<f64>> = peers
                    .iter()
                    .map(|p| p[lib][digits.to_string()][job.name()]["seconds"].as_f64())
                    .collect();
                let Some(times) = times else {
                    row.push_str(&format!(" | {:>29}", format!("{lib} unavailable")));
                    continue;
                };
                // Arb: ours / Arb (the target is <= 2); mpmath: mpmath / ours.
                let (ratio, paired) = if lib == "arb" {
                    (
                        best(our_times) / best(&times),
                        median(our_times.iter().zip(&times).map(|(o, p)| o / p).collect()),
                    )
                } else {
                    (
                        best(&times) / best(our_times),
                        median(times.iter().zip(our_times).map(|(p, o)| p / o).collect()),
                    )
                };
                row.push_str(&format!(
                    " | {:>11} {:>7.2}x {:>7.2}x",
                    seconds(best(&times)),
                    ratio,
                    paired
                ));
            }
            println!("{row}");
        }
        // Agreement of the leading digits, and Arb's own certified digits.
        for (value, job) in values.iter().zip(Job::ALL) {
            let ours_text = value.to_decimal(30);
            let mine = leading_digits(&ours_text, COMPARED_DIGITS);
            let mut notes = Vec::new();
            for (lib, label) in LIBRARIES {
                let entry = &peers[0][lib][digits.to_string()][job.name()];
                let Some(text) = entry["value"].as_str() else {
                    continue;
                };
                let agree = mine.is_some() && leading_digits(text, COMPARED_DIGITS) == mine;
                if !agree {
                    mismatches += 1;
                }
                let certified = entry["certified_digits"]
                    .as_u64()
                    .map(|d| format!(", certifies {d} digits"))
                    .unwrap_or_default();
                notes.push(format!(
                    "{label} {}{certified}",
                    if agree { "agrees" } else { "DISAGREES" }
                ));
            }
            println!(
                "    {:<22} {ours_text}: {}",
                job.name(),
                if notes.is_empty() {
                    "no peer value".to_string()
                } else {
                    notes.join("; ")
                }
            );
        }
        // Cold first calls (Bernoulli numbers, constants), for orientation.
        let cold: Vec<String> = LIBRARIES
            .iter()
            .filter_map(|(lib, label)| {
                let e = &peers[0][lib][digits.to_string()]["expected_log_variance"];
                e["first_call_seconds"]
                    .as_f64()
                    .map(|s| format!("{label} {}", seconds(s)))
            })
            .collect();
        println!(
            "    first (cold) call of the digamma drift in the peer process: {}",
            cold.join(", ")
        );
    }
    println!(
        "\n  leading {COMPARED_DIGITS} digits: {}",
        if mismatches == 0 {
            "every peer value agrees with ours".to_string()
        } else {
            format!("{mismatches} DISAGREE")
        }
    );
    assert_eq!(mismatches, 0, "a peer's value disagrees with ours");
}

fn seconds(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    certify(&mut criterion);
    verify(&mut criterion);
    criterion.final_summary();
    // Under `cargo test --all-targets` (no --bench) criterion runs each bench once; skip the peers.
    if std::env::args().any(|a| a == "--bench") {
        peer_comparison();
    }
}
