//! Benches of the categorical resampling (Wright–Fisher) samplers and ensemble, with the numpy
//! peer measured in the same run.
//!
//! `cargo bench --bench markov` prints criterion's estimates of the binomial and multinomial
//! samplers, then times the ensemble R = 1000, K = 1000 (Zipf 1.1), M = 10^4, N = 1000 in Rust
//! (1 and 2 threads) and in numpy (`benches/peers/wright_fisher_numpy.py`, when python3 with
//! numpy is available), in alternating rounds, and prints the ratios. `-- no-criterion-match` runs only the latter.

use collapse_analysis::markov::theory::{Initial, MarkovSpec};
use collapse_sim::markov::{MarkovConfig, MarkovMethod, binomial, multinomial, simulate};
use collapse_sim::rng::{ChainRng, stream};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

fn samplers(c: &mut Criterion) {
    let mut group = c.benchmark_group("markov_samplers");
    group.throughput(Throughput::Elements(1));
    let mut rng = ChainRng::for_chain(1, stream::TEST, 0);
    // Ours (inversion below mean 10, BTRD above) against rand_distr's (BINV, BTPE) as the
    // baseline, with the parameters changing on every call as in the conditional binomials.
    for (name, n, p) in [
        ("n1e4_p0.0005_inversion", 10_000u64, 0.0005),
        ("n1e4_p0.3_btrd", 10_000, 0.3),
    ] {
        group.bench_function(format!("binomial_{name}"), |b| {
            b.iter(|| black_box(binomial(&mut rng, black_box(n), black_box(p))))
        });
        group.bench_function(format!("rand_distr_{name}"), |b| {
            b.iter(|| {
                let law = rand_distr::Binomial::new(black_box(n), black_box(p)).expect("valid");
                black_box(rand_distr::Distribution::sample(&law, &mut rng))
            })
        });
    }
    // One multinomial draw, M = 10^4 over K = 1000 Zipf(1.1) categories.
    let weights: Vec<(u32, f64)> = (1..=1000u32)
        .map(|i| (i - 1, f64::from(i).powf(-1.1)))
        .collect();
    let mut out = Vec::new();
    group.bench_function("multinomial_m1e4_k1000_zipf", |b| {
        b.iter(|| {
            multinomial(&mut rng, 10_000, &weights, &mut out);
            black_box(&out);
        })
    });
    group.finish();
}

fn ensemble_seconds(spec: &MarkovSpec, threads: usize, chains: u64) -> f64 {
    let mut config = MarkovConfig::new(chains, 1, MarkovMethod::Binomial);
    config.threads = Some(threads);
    let t = Instant::now();
    black_box(simulate(spec, &config).expect("runs"));
    t.elapsed().as_secs_f64()
}

/// The numpy peer's time, with its per-generation statistics (as the Rust ensemble computes)
/// or without them (the multinomial resampling alone).
fn numpy_seconds(chains: u64, k: u64, m: u64, n: u64, statistics: bool) -> Option<f64> {
    let mut command = Command::new("python3");
    command.args([
        "benches/peers/wright_fisher_numpy.py",
        "--chains",
        &chains.to_string(),
        "--categories",
        &k.to_string(),
        "--samples",
        &m.to_string(),
        "--generations",
        &n.to_string(),
        "--zipf",
        "1.1",
        "--json",
    ]);
    if !statistics {
        command.arg("--no-stats");
    }
    let out = command
        .env("OMP_NUM_THREADS", "1")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["seconds_min"].as_f64()
}

/// Rounds of the peer comparison: each runs Rust (1 and 2 threads) and numpy (with and without
/// the statistics) once, so that a slow spell of this shared machine hits both sides.
const ROUNDS: usize = 3;

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

fn peer_comparison() {
    let (chains, k, m, n) = (1000u64, 1000u64, 10_000u64, 1000u64);
    let spec = MarkovSpec::new(m, k, Initial::Zipf(1.1), n).expect("valid");
    println!(
        "\nmarkov peer comparison: R = {chains}, K = {k} (Zipf 1.1), M = {m}, N = {n}, \
         {ROUNDS} alternating rounds"
    );
    let (mut one, mut two) = (Vec::new(), Vec::new());
    let mut peers: [Vec<Option<f64>>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        one.push(ensemble_seconds(&spec, 1, chains));
        two.push(ensemble_seconds(&spec, 2, chains));
        for (slot, statistics) in peers.iter_mut().zip([true, false]) {
            slot.push(numpy_seconds(chains, k, m, n, statistics));
        }
    }
    println!(
        "  rust (with its statistics): best {:.2} s on 1 thread, {:.2} s on 2 threads",
        best(&one),
        best(&two)
    );
    for (times, label) in peers
        .iter()
        .zip(["numpy with the same statistics", "numpy resampling alone"])
    {
        let Some(times) = times.iter().copied().collect::<Option<Vec<f64>>>() else {
            println!("  {label}: unavailable (python3 with numpy)");
            continue;
        };
        let paired = |rust: &[f64]| median(times.iter().zip(rust).map(|(p, r)| p / r).collect());
        println!(
            "  {label}: best {:.2} s; best vs best {:.1}x (1 thread), {:.1}x (2 threads); \
             paired median {:.1}x, {:.1}x",
            best(&times),
            best(&times) / best(&one),
            best(&times) / best(&two),
            paired(&one),
            paired(&two),
        );
    }
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    samplers(&mut criterion);
    criterion.final_summary();
    // Under `cargo test --all-targets` (no --bench) criterion runs each bench once; skip the peer.
    if std::env::args().any(|a| a == "--bench") {
        peer_comparison();
    }
}
