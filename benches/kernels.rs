//! Criterion benches of the simulation kernels, and the numpy peer measured in the same run.
//!
//! `cargo bench --bench kernels` prints criterion's estimates, then times the ensemble that
//! `benches/peers/gaussian_numpy.py` runs (R = 10^4, M = 100, 100 generations) once in Rust and
//! once in numpy (when python3 with numpy is available) and prints the ratio.

use collapse_analysis::{Estimator, GaussianSpec, Schedule};
use collapse_sim::gaussian::{EnsembleConfig, Method, simulate};
use collapse_sim::kernels;
use collapse_sim::normal::StandardNormal;
use collapse_sim::rng::{ChainRng, stream};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

fn normals(c: &mut Criterion) {
    let mut group = c.benchmark_group("normal");
    let count = 1_000_000u64;
    group.throughput(Throughput::Elements(count));
    let sampler = StandardNormal::new();
    group.bench_function("ziggurat_1e6", |b| {
        let mut rng = ChainRng::for_chain(1, stream::TEST, 0);
        b.iter(|| black_box(sampler.sum_and_sum_sq(&mut rng, count)))
    });
    // The exact method's kernel: fits of M = 100 ziggurat normals for a block of 256 chains,
    // one chain at a time in the portable scalar code and four chains per vector (AVX2/FMA).
    group.throughput(Throughput::Elements(256 * 100));
    let mut block: Vec<ChainRng> = (0..256)
        .map(|c| ChainRng::for_chain(1, stream::TEST, c))
        .collect();
    let (mut means, mut ss) = (vec![0.0; 256], vec![0.0; 256]);
    group.bench_function("fit_m100_256_chains_scalar", |b| {
        b.iter(|| {
            for ((rng, mean), s) in block.iter_mut().zip(&mut means).zip(&mut ss) {
                (*mean, *s) = kernels::fit_normals(rng, 100);
            }
            black_box(&means);
        })
    });
    group.bench_function("fit_m100_256_chains_vector", |b| {
        b.iter(|| {
            kernels::fit_normals_many(&mut block, 100, &mut means, &mut ss);
            black_box(&means);
        })
    });
    // The sufficient method's draw (a normal and a chi-square(99)) for 256 chains.
    group.throughput(Throughput::Elements(256));
    let chi = kernels::ChiSquareConstants::new(99.0);
    group.bench_function("sufficient_draw_256_chains_vector", |b| {
        b.iter(|| {
            kernels::sufficient_draw_many(&mut block, &chi, &mut means, &mut ss);
            black_box(&ss);
        })
    });
    group.finish();
}

fn ensemble_spec(m: u64, generations: u64) -> GaussianSpec {
    GaussianSpec::new(Schedule::constant(m), Estimator::Unbiased, 1.0, generations).expect("valid")
}

fn generations(c: &mut Criterion) {
    let mut group = c.benchmark_group("gaussian_generations");
    group.sample_size(10);
    let (chains, m, n) = (10_000u64, 100u64, 10u64);
    group.throughput(Throughput::Elements(chains * n));
    for method in [Method::Exact, Method::Sufficient] {
        for threads in [1usize, 2] {
            let mut config = EnsembleConfig::new(chains, 1, method);
            config.threads = Some(threads);
            let spec = ensemble_spec(m, n);
            group.bench_with_input(
                BenchmarkId::new(method.name(), format!("{threads}t")),
                &config,
                |b, cfg| b.iter(|| black_box(simulate(&spec, cfg).expect("runs"))),
            );
        }
    }
    group.finish();
}

/// Runs per side of the peer comparison; each side reports its fastest (the run least
/// disturbed by other work on the machine).
const PEER_REPEATS: usize = 7;

/// Whole-ensemble time in Rust for the numpy peer's configuration.
fn rust_seconds(method: Method, threads: usize, chains: u64, m: u64, n: u64) -> f64 {
    let mut config = EnsembleConfig::new(chains, 1, method);
    config.threads = Some(threads);
    let spec = ensemble_spec(m, n);
    (0..PEER_REPEATS)
        .map(|_| {
            let t = Instant::now();
            black_box(simulate(&spec, &config).expect("runs"));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn peer_comparison() {
    let (chains, m, n) = (10_000u64, 100u64, 100u64);
    let peer = Command::new("python3")
        .args([
            "benches/peers/gaussian_numpy.py",
            "--chains",
            &chains.to_string(),
            "--samples",
            &m.to_string(),
            "--generations",
            &n.to_string(),
            "--method",
            "both",
            "--repeat",
            &PEER_REPEATS.to_string(),
            "--json",
        ])
        .env("OMP_NUM_THREADS", "1")
        .output();
    let peer_seconds = |method: &str| -> Option<f64> {
        let out = peer.as_ref().ok().filter(|o| o.status.success())?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                (v["method"] == method)
                    .then(|| v["seconds_min"].as_f64())
                    .flatten()
            })
    };
    println!("\npeer comparison: R = {chains}, M = {m}, {n} generations (best of {PEER_REPEATS})");
    for (method, peer_name) in [
        (Method::Exact, "literal"),
        (Method::Sufficient, "sufficient"),
    ] {
        let one = rust_seconds(method, 1, chains, m, n);
        let two = rust_seconds(method, 2, chains, m, n);
        match peer_seconds(peer_name) {
            Some(p) => println!(
                "  {:<10} rust 1 thread {one:.3} s, 2 threads {two:.3} s; numpy {p:.3} s; speed-up {:.1}x (1 thread), {:.1}x (2 threads)",
                method.name(),
                p / one,
                p / two
            ),
            None => println!(
                "  {:<10} rust 1 thread {one:.3} s, 2 threads {two:.3} s; numpy peer unavailable (python3 with numpy)",
                method.name()
            ),
        }
    }
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    normals(&mut criterion);
    generations(&mut criterion);
    criterion.final_summary();
    // Under `cargo test --all-targets` (no --bench) criterion runs each bench once; skip the peer.
    if std::env::args().any(|a| a == "--bench") {
        peer_comparison();
    }
}
