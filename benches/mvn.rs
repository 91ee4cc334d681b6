//! Benches of one generation of the d-dimensional Gaussian ensemble (`collapse_sim::mvn`).
//!
//! `cargo bench --bench mvn` prints criterion's estimates of one generation step of 64 chains
//! for both methods at d = 2, 10, 100 with M = 10 d (`exact`: draw and fit M vectors, O(M d^2);
//! `sufficient`: the mean's normal and the Bartlett factor, O(d^3)), and of the per-chain
//! statistics (moments, two or one SVDs, W2), then times both methods in alternating rounds at
//! M = 2 d and M = 10 d and prints the exact/sufficient time ratio (how many times faster
//! `sufficient` is). `-- no-criterion-match` runs only the latter.

use collapse_analysis::{MvnSpec, Schedule};
use collapse_sim::mvn::{ChainState, MvnMethod, Stepper};
use collapse_sim::rng::{ChainRng, stream};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CHAINS: usize = 64;
const DIMS: [usize; 3] = [2, 10, 100];

/// Sigma = diag(1, 2, ..., d) (not isotropic: the statistics take both SVDs).
fn spec(d: usize, m: u64) -> MvnSpec {
    let cov = (1..=d).map(|j| j as f64).collect();
    MvnSpec::new(d as u64, Schedule::constant(m), Some(cov), 1).expect("valid spec")
}

struct Ensemble {
    stepper: Stepper,
    states: Vec<ChainState>,
    rngs: Vec<ChainRng>,
}

impl Ensemble {
    fn new(spec: &MvnSpec) -> Ensemble {
        Ensemble {
            stepper: Stepper::new(spec).expect("valid spec"),
            states: vec![ChainState::truth(spec); CHAINS],
            rngs: (0..CHAINS as u64)
                .map(|c| ChainRng::for_chain(1, stream::TEST, c))
                .collect(),
        }
    }

    /// One generation of every chain.
    fn step(&mut self, method: MvnMethod, m: u64) {
        for (state, rng) in self.states.iter_mut().zip(&mut self.rngs) {
            self.stepper
                .advance(method, m, rng, state)
                .expect("valid step");
        }
        black_box(&self.states);
    }

    fn statistics(&mut self) {
        for state in &self.states {
            black_box(self.stepper.statistics(state).expect("valid state"));
        }
    }
}

fn generations(c: &mut Criterion) {
    let mut group = c.benchmark_group("mvn_generation_64_chains");
    group.throughput(Throughput::Elements(CHAINS as u64));
    for d in DIMS {
        if d >= 100 {
            group.sample_size(10);
        }
        let m = 10 * d as u64;
        let s = spec(d, m);
        for method in [MvnMethod::Exact, MvnMethod::Sufficient] {
            let mut ensemble = Ensemble::new(&s);
            group.bench_function(format!("{}_d{d}_m{m}", method.name()), |b| {
                b.iter(|| ensemble.step(method, m))
            });
        }
        let mut ensemble = Ensemble::new(&s);
        ensemble.step(MvnMethod::Sufficient, m);
        group.bench_function(format!("statistics_d{d}"), |b| {
            b.iter(|| ensemble.statistics())
        });
    }
    group.finish();
}

/// Seconds per generation of 64 chains: the best of `rounds` rounds, each repeating the step
/// for at least `budget`.
fn seconds_per_generation(
    ensemble: &mut Ensemble,
    method: MvnMethod,
    m: u64,
    budget: Duration,
) -> f64 {
    let start = Instant::now();
    let mut reps = 0u32;
    while reps == 0 || start.elapsed() < budget {
        ensemble.step(method, m);
        reps += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(reps)
}

fn ratios(smoke: bool) {
    let (rounds, budget) = if smoke {
        (1, Duration::ZERO)
    } else {
        (5, Duration::from_millis(200))
    };
    println!(
        "\nmvn one generation of {CHAINS} chains, best of {rounds} alternating rounds \
         (exact / sufficient = how many times faster sufficient is)"
    );
    println!(
        "  {:>4} {:>6} {:>14} {:>14} {:>14} {:>10}",
        "d", "M", "exact", "sufficient", "statistics", "ratio"
    );
    for d in DIMS {
        for m in [2 * d as u64, 10 * d as u64] {
            let s = spec(d, m);
            let (mut exact, mut sufficient) = (Ensemble::new(&s), Ensemble::new(&s));
            let (mut te, mut ts) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..rounds {
                te = te.min(seconds_per_generation(
                    &mut exact,
                    MvnMethod::Exact,
                    m,
                    budget,
                ));
                ts = ts.min(seconds_per_generation(
                    &mut sufficient,
                    MvnMethod::Sufficient,
                    m,
                    budget,
                ));
            }
            let start = Instant::now();
            sufficient.statistics();
            let stats = start.elapsed().as_secs_f64();
            println!(
                "  {d:>4} {m:>6} {:>11.1} us {:>11.1} us {:>11.1} us {:>9.1}x",
                te * 1e6,
                ts * 1e6,
                stats * 1e6,
                te / ts
            );
        }
    }
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    generations(&mut criterion);
    criterion.final_summary();
    // Under `cargo test --all-targets` (no --bench) criterion runs each bench once: a smoke run.
    ratios(!std::env::args().any(|a| a == "--bench"));
}
