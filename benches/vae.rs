//! Benches of the VAE kernels and training step (`collapse_sim::nn`, `collapse_sim::vae`).
//!
//! `cargo bench --bench vae` prints criterion's estimates of
//! - GEMM at the layer shapes, as floating-point operations per second (criterion's
//!   "elem/s" are flop/s): the MLP's first layer forward (128 x 784 times 784 x 400) and its
//!   weight gradient (400 x 128 times 128 x 784), and the paper network's second convolution as
//!   im2col + GEMM (128 x 1024 times 1024 x 12544, batch 256);
//! - training examples per second ("elem/s") of one Adam step of the MLP VAE 784-400-20 at
//!   batch 128 and of the paper's convolutional VAE at batch 256, each on 1 and 2 threads.
//!
//! Then, when `python3 -c "import jax"` succeeds, it times the same MLP and paper training
//! steps here and in `benches/peers/vae_jax.py` (plain JAX, jit-compiled, the same Adam; its
//! transposed convolutions as stride-1 sub-pixel convolutions, about 3x faster on XLA's CPU
//! backend than `lax.conv_transpose`), on one thread each, in alternating rounds, and prints
//! examples/s of both and the ratio. Without
//! JAX (`pip install "jax[cpu]"`) it says so and skips the comparison. It also measures one
//! core's peak rate of fused multiply-adds (AVX2/FMA, 12 independent chains) and prints the
//! MLP step's floating-point work against it: the ceiling on examples/s that no implementation
//! on this core can pass.

use collapse_sim::nn::{Adam, MatRef, gemm};
use collapse_sim::rng::{ChainRng, stream};
use collapse_sim::vae::{Arch, LATENT, Vae};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;

mod common;

fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChainRng::for_chain(seed, stream::TEST, 0);
    (0..n).map(|_| rng.next_f64() as f32).collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

/// A model, its optimiser and a batch of images in [0, 1].
struct Trainer {
    model: Vae,
    adam: Adam,
    x: Vec<f32>,
    batch: usize,
    rng: ChainRng,
}

impl Trainer {
    fn new(arch: Arch, batch: usize) -> Trainer {
        let mut rng = ChainRng::for_chain(1, stream::TEST, 1);
        Trainer {
            model: Vae::new(arch, 28, 28, LATENT, &mut rng).expect("a model"),
            adam: Adam::new(1e-3, 1e-5).expect("valid settings"),
            x: uniform(batch * 784, 2),
            batch,
            rng,
        }
    }

    fn step(&mut self) -> f64 {
        self.model
            .train_step(&self.x, self.batch, &mut self.rng, &mut self.adam)
            .expect("a step")
    }
}

fn gemm_bench(c: &mut Criterion, name: &str, m: usize, k: usize, n: usize) {
    let a = uniform(m * k, 3);
    let b = uniform(k * n, 4);
    let mut out = vec![0.0; m * n];
    let mut group = c.benchmark_group("vae/gemm");
    group.throughput(Throughput::Elements((2 * m * k * n) as u64));
    for threads in [1, 2] {
        let p = pool(threads);
        group.bench_function(format!("{name}_{m}x{k}x{n}_{threads}_thread"), |bench| {
            p.install(|| {
                bench.iter(|| {
                    gemm(
                        MatRef::row_major(&a, m, k),
                        MatRef::row_major(&b, k, n),
                        0.0,
                        &mut out,
                        n,
                    );
                    black_box(out[0])
                })
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    gemm_bench(c, "mlp_fc1_forward", 128, 784, 400);
    gemm_bench(c, "mlp_fc1_weight_grad", 400, 128, 784);
    gemm_bench(c, "paper_conv2_forward", 128, 1024, 256 * 49);
    for (arch, batch, samples) in [(Arch::Mlp, 128, 50), (Arch::Paper, 256, 10)] {
        let mut group = c.benchmark_group("vae/train_step");
        group.throughput(Throughput::Elements(batch as u64));
        group.sample_size(samples);
        for threads in [1, 2] {
            let p = pool(threads);
            let mut t = Trainer::new(arch, batch);
            group.bench_function(
                format!("{}_batch_{batch}_{threads}_thread", arch.name()),
                |bench| p.install(|| bench.iter(|| black_box(t.step()))),
            );
        }
        group.finish();
    }
}

/// The peer's best examples/s for `model` on one thread.
fn peer(model: &str) -> Option<f64> {
    common::peer_value(
        "benches/peers/vae_jax.py",
        &["--model", model, "--threads", "1", "--convt", "subpixel"],
        "examples_per_second_best",
    )
}

/// Our best examples/s over a few timed spans of steps on one thread.
fn ours(arch: Arch, batch: usize, seconds: f64) -> f64 {
    pool(1).install(|| {
        let mut t = Trainer::new(arch, batch);
        common::best_rate(seconds, 3, || (batch, t.step()))
    })
}

/// Floating-point operations of one MLP VAE training step: every dense layer's forward product
/// and weight gradient, and the input gradient of all but the first layer (whose input is data).
fn mlp_step_flops(batch: usize) -> f64 {
    let layers = [
        (784, 400),
        (400, LATENT),
        (400, LATENT),
        (LATENT, 400),
        (400, 784),
    ];
    let macs: usize = layers.iter().map(|(i, o)| i * o).sum();
    (2 * batch * (3 * macs - 784 * 400)) as f64
}

/// One core's best rate of 8-wide fused multiply-adds in GFLOP/s, or None without AVX2/FMA.
fn peak_fma_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        let iterations = 20_000_000;
        let mut best: f64 = 0.0;
        for _ in 0..5 {
            let start = Instant::now();
            // SAFETY: AVX2 and FMA were detected above.
            black_box(unsafe { fma_chains(black_box(iterations)) });
            let flops = (iterations * FMA_CHAINS * 8 * 2) as f64;
            best = best.max(flops / start.elapsed().as_secs_f64() / 1e9);
        }
        Some(best)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Independent accumulators: enough to cover the FMA latency times the number of FMA pipes.
const FMA_CHAINS: usize = 12;

/// `iterations` rounds of one 8-wide FMA on each of 12 independent registers, written in
/// assembly so that the compiler can neither fold nor reorder the chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(iterations: usize) -> f32 {
    use std::arch::asm;
    let mut lanes = [0.0f32; 8];
    // SAFETY: plain register arithmetic on ymm0-ymm13 and one 32-byte store into `lanes`.
    unsafe {
        asm!(
            "vbroadcastss ymm12, [{a}]",
            "vbroadcastss ymm13, [{b}]",
            "vmovaps ymm0, ymm13", "vmovaps ymm1, ymm13", "vmovaps ymm2, ymm13",
            "vmovaps ymm3, ymm13", "vmovaps ymm4, ymm13", "vmovaps ymm5, ymm13",
            "vmovaps ymm6, ymm13", "vmovaps ymm7, ymm13", "vmovaps ymm8, ymm13",
            "vmovaps ymm9, ymm13", "vmovaps ymm10, ymm13", "vmovaps ymm11, ymm13",
            "2:",
            "vfmadd213ps ymm0, ymm12, ymm13", "vfmadd213ps ymm1, ymm12, ymm13",
            "vfmadd213ps ymm2, ymm12, ymm13", "vfmadd213ps ymm3, ymm12, ymm13",
            "vfmadd213ps ymm4, ymm12, ymm13", "vfmadd213ps ymm5, ymm12, ymm13",
            "vfmadd213ps ymm6, ymm12, ymm13", "vfmadd213ps ymm7, ymm12, ymm13",
            "vfmadd213ps ymm8, ymm12, ymm13", "vfmadd213ps ymm9, ymm12, ymm13",
            "vfmadd213ps ymm10, ymm12, ymm13", "vfmadd213ps ymm11, ymm12, ymm13",
            "dec {n}",
            "jnz 2b",
            "vaddps ymm0, ymm0, ymm11",
            "vmovups [{out}], ymm0",
            "vzeroupper",
            a = in(reg) &0.999_9f32,
            b = in(reg) &1e-4f32,
            out = in(reg) lanes.as_mut_ptr(),
            n = inout(reg) iterations.max(1) => _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _,
            out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _,
            out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _,
            options(nostack),
        );
    }
    lanes.iter().sum()
}

/// Rounds of the peer comparison, alternating sides so that a slow spell hits both.
const ROUNDS: usize = 2;

fn compare(smoke: bool) {
    if smoke {
        return;
    }
    if !common::jax_available() {
        println!("vae peer: JAX is not installed (pip install \"jax[cpu]\"): skipped");
        return;
    }
    let mut mlp_jax_best: f64 = 0.0;
    for (arch, batch) in [(Arch::Mlp, 128), (Arch::Paper, 256)] {
        for round in 1..=ROUNDS {
            let ours = ours(arch, batch, 6.0);
            let Some(theirs) = peer(arch.name()) else {
                return;
            };
            if arch == Arch::Mlp {
                mlp_jax_best = mlp_jax_best.max(theirs);
            }
            println!(
                "vae {} batch {batch}, one thread, round {round}: ours {ours:.0} examples/s, JAX {theirs:.0} examples/s: {:.2}x",
                arch.name(),
                ours / theirs
            );
        }
    }
    if let Some(peak) = peak_fma_gflops() {
        let flops = mlp_step_flops(128);
        let ceiling = peak * 1e9 / flops * 128.0;
        println!(
            "one core's FMA peak: {peak:.1} GFLOP/s; an MLP step at batch 128 is {:.0} MFLOP, so \
             at most {ceiling:.0} examples/s at peak with nothing but multiply-adds; 1.5x JAX's \
             best ({:.0} examples/s) would need {:.0}% of peak for the whole step",
            flops / 1e6,
            1.5 * mlp_jax_best,
            100.0 * 1.5 * mlp_jax_best / ceiling
        );
    }
}

fn main() {
    // Plots off: criterion's plotters backend needs system fonts, which this toolkit does not assume.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    // Under `cargo test --all-targets` (no --bench) criterion runs each bench once: a smoke run.
    // A filtered run (`cargo bench --bench vae -- NAME`) skips the peer comparison.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args.iter().any(|a| !a.starts_with('-'));
    compare(!args.iter().any(|a| a == "--bench") || filtered);
}
