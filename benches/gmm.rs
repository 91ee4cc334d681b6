//! Benches of the Gaussian-mixture experiment (`collapse_sim::gmm`).
//!
//! `cargo bench --bench gmm` prints criterion's estimates of one EM fit at the paper's size (two
//! full-covariance components, 1000 points of N(0, I_2), tol 1e-5) and of one generation of 64
//! chains (draw, fit, statistics). Then, when `python3 -c "import sklearn"` succeeds, it times
//! the same fit here and in `benches/peers/gmm_sklearn.py` (scikit-learn's GaussianMixture with
//! the paper's settings) in alternating rounds, both on one thread, and prints the time ratio and
//! the mean EM iterations of each; and it runs one chain of 2050 generations on each side and
//! prints both times and the final components' standard deviations (the collapse the paper
//! reports: about 0.01). Without scikit-learn it says so and skips the comparison.

use collapse_analysis::gmm::{GmmSpec, Mixture};
use collapse_sim::gmm::em::{Em, EmConfig};
use collapse_sim::gmm::{GmmConfig, Model, simulate};
use collapse_sim::normal::StandardNormal;
use collapse_sim::rng::{ChainRng, stream};
use criterion::Criterion;
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

const SAMPLES: usize = 1000;
const GENERATIONS: u64 = 2050;

fn data(seed: u64) -> Vec<f64> {
    let mut rng = ChainRng::for_chain(seed, stream::TEST, 0);
    let mut x = Vec::with_capacity(2 * SAMPLES);
    Model::of(&Mixture::standard_normal(2)).sample_into(
        SAMPLES,
        &mut rng,
        &StandardNormal::new(),
        &mut x,
    );
    x
}

/// One paper-sized fit; returns its EM iterations.
fn fit(em: &mut Em, x: &[f64], seed: u64) -> usize {
    let mut model = Model::blank(2, 2);
    let mut rng = ChainRng::for_chain(seed, stream::TEST, 1);
    em.fit(x, &mut model, &EmConfig::default(), &mut rng)
        .iterations
}

fn benches(c: &mut Criterion) {
    let x = data(1);
    let mut em = Em::new();
    c.bench_function("gmm/em_fit_k2_d2_m1000", |b| {
        b.iter(|| black_box(fit(&mut em, black_box(&x), 1)))
    });
    let spec = GmmSpec::paper(SAMPLES as u64, 1).expect("valid spec");
    let mut config = GmmConfig::new(64, 1);
    config.threads = Some(1);
    // About 0.1 s per iteration: ten samples are enough.
    let mut group = c.benchmark_group("gmm");
    group.sample_size(10);
    group.bench_function("generation_64_chains_1_thread", |b| {
        b.iter(|| black_box(simulate(&spec, &config).expect("valid run").rows.len()))
    });
    group.finish();
}

fn sklearn_available() -> bool {
    Command::new("python3")
        .args(["-c", "import sklearn"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn peer(fits: usize, generations: u64) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .arg("benches/peers/gmm_sklearn.py")
        .args(["--fits", &fits.to_string()])
        .args(["--generations", &generations.to_string()])
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "gmm_sklearn.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Our side of the peer comparison: median seconds per fit over `fits` fresh data sets and the
/// mean iterations.
fn ours(fits: usize) -> (f64, f64) {
    let mut em = Em::new();
    let mut times = Vec::with_capacity(fits);
    let mut iterations = 0;
    for i in 0..fits {
        let x = data(100 + i as u64);
        let t = Instant::now();
        iterations += fit(&mut em, &x, i as u64);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[fits / 2], iterations as f64 / fits as f64)
}

/// Rounds of the peer comparison, alternating sides so that a slow spell hits both.
const ROUNDS: usize = 3;

fn compare(smoke: bool) {
    if smoke {
        return;
    }
    if !sklearn_available() {
        println!("gmm peer: scikit-learn is not installed (pip install scikit-learn): skipped");
        return;
    }
    for round in 1..=ROUNDS {
        let (ours_fit, ours_iterations) = ours(200);
        let Some(p) = peer(200, 0) else { return };
        let theirs = p["fit_seconds_median"].as_f64().unwrap_or(f64::NAN);
        println!(
            "gmm fit round {round}: ours {:.1} us ({ours_iterations:.1} EM iterations), scikit-learn {:.1} us ({:.1} iterations): {:.1}x",
            ours_fit * 1e6,
            theirs * 1e6,
            p["fit_iterations_mean"].as_f64().unwrap_or(f64::NAN),
            theirs / ours_fit
        );
    }
    let spec = GmmSpec::paper(SAMPLES as u64, GENERATIONS).expect("valid spec");
    let mut config = GmmConfig::new(1, 1);
    config.threads = Some(1);
    config.heldout = 1;
    let t = Instant::now();
    let run = simulate(&spec, &config).expect("valid run");
    let ours_seconds = t.elapsed().as_secs_f64();
    let last = run.chain0.last().expect("generations");
    // Components of weight below 1/M have vanished (fitted to no point): left out.
    let mut sd: Vec<f64> = (0..last.components())
        .filter(|&k| last.weights[k] * SAMPLES as f64 >= 1.0)
        .flat_map(|k| {
            nalgebra::SymmetricEigen::new(last.cov(k))
                .eigenvalues
                .iter()
                .map(|l| l.max(0.0).sqrt())
                .collect::<Vec<_>>()
        })
        .collect();
    sd.sort_by(f64::total_cmp);
    let Some(p) = peer(1, GENERATIONS) else {
        return;
    };
    let theirs = p["generations_seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "gmm {GENERATIONS} generations, one chain: ours {ours_seconds:.2} s (final sd {sd:.4?}), scikit-learn {theirs:.2} s (final sd {}): {:.1}x",
        p["final_sd"],
        theirs / ours_seconds
    );
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    // Under `cargo test --all-targets` (no --bench) criterion runs each bench once: a smoke run.
    // A filtered run (`cargo bench --bench gmm -- NAME`) skips the peer comparison.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args.iter().any(|a| !a.starts_with('-'));
    compare(!args.iter().any(|a| a == "--bench") || filtered);
}
