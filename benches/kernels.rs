//! Criterion benches of the simulation kernels, and the numpy peer measured in the same run.
//!
//! `cargo bench --bench kernels` prints criterion's estimates, then times the ensemble that
//! `benches/peers/gaussian_numpy.py` runs (R = 10^4, M = 100, 100 generations) in Rust and in
//! numpy (when python3 with numpy is available), in alternating rounds, and prints the ratios.

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

/// Rounds of the peer comparison. Each round runs numpy once and then Rust once per method and
/// thread count, so both sides of a round see the same state of a shared machine; the speed-up
/// is the median over rounds of the paired ratios.
const PEER_ROUNDS: usize = 7;

/// One whole-ensemble run in Rust in the numpy peer's configuration, in seconds.
fn rust_seconds(method: Method, threads: usize, chains: u64, m: u64, n: u64) -> f64 {
    let mut config = EnsembleConfig::new(chains, 1, method);
    config.threads = Some(threads);
    let spec = ensemble_spec(m, n);
    let t = Instant::now();
    black_box(simulate(&spec, &config).expect("runs"));
    t.elapsed().as_secs_f64()
}

/// One run of the numpy peer: seconds for (literal, sufficient), or None without python3/numpy.
fn numpy_seconds(chains: u64, m: u64, n: u64) -> Option<[f64; 2]> {
    let out = Command::new("python3")
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
            "1",
            "--json",
        ])
        .env("OMP_NUM_THREADS", "1")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let seconds = |method: &str| {
        text.lines().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["method"] == method)
                .then(|| v["seconds_min"].as_f64())
                .flatten()
        })
    };
    Some([seconds("literal")?, seconds("sufficient")?])
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let k = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[k]
    } else {
        0.5 * (xs[k - 1] + xs[k])
    }
}

fn minimum(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn peer_comparison() {
    let (chains, m, n) = (10_000u64, 100u64, 100u64);
    let methods = [Method::Exact, Method::Sufficient];
    // rust[method][threads - 1][round], numpy[method][round]
    let mut rust = [[vec![], vec![]], [vec![], vec![]]];
    let mut numpy: [Vec<f64>; 2] = [vec![], vec![]];
    for _ in 0..PEER_ROUNDS {
        if let Some(p) = numpy_seconds(chains, m, n) {
            numpy[0].push(p[0]);
            numpy[1].push(p[1]);
        }
        for (i, &method) in methods.iter().enumerate() {
            for threads in [1, 2] {
                let t = rust_seconds(method, threads, chains, m, n);
                rust[i][threads - 1].push(t);
            }
        }
    }
    println!(
        "\npeer comparison: R = {chains}, M = {m}, {n} generations, {PEER_ROUNDS} rounds (numpy, then Rust)"
    );
    for (i, method) in methods.iter().enumerate() {
        let (one, two) = (&rust[i][0], &rust[i][1]);
        print!(
            "  {:<10} rust best 1 thread {:.3} s, 2 threads {:.3} s",
            method.name(),
            minimum(one),
            minimum(two)
        );
        if numpy[i].len() == PEER_ROUNDS {
            let ratios = |rust: &[f64]| -> Vec<f64> {
                numpy[i].iter().zip(rust).map(|(p, r)| p / r).collect()
            };
            let (r1, r2) = (ratios(one), ratios(two));
            println!(
                "; numpy best {:.3} s; speed-up (median of paired rounds) {:.1}x on 1 thread [{:.1}-{:.1}], {:.1}x on 2 [{:.1}-{:.1}]",
                minimum(&numpy[i]),
                median(r1.clone()),
                minimum(&r1),
                r1.iter().copied().fold(0.0, f64::max),
                median(r2.clone()),
                minimum(&r2),
                r2.iter().copied().fold(0.0, f64::max),
            );
        } else {
            println!("; numpy peer unavailable (python3 with numpy)");
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
