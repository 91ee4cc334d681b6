//! The VAE protocol on small synthetic images: parameter counts, learning, determinism (seed,
//! thread count), checkpoint and resume (bit-identical to an uninterrupted run), refusals, and
//! the strategies' training sets.

use super::*;
use crate::rng::stream;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Ten classes of 8x8 images, classes drawn at random: class c has a bright 2-pixel-wide bar
/// at row c % 4 * 2 (horizontal for c < 4, vertical for 4 <= c < 8, both for 8 and 9), plus a
/// little noise.
fn synthetic_digits(count: usize) -> Digits {
    let mut rng = ChainRng::for_chain(7, stream::TEST, 0);
    let (side, mut images, mut labels) = (8usize, Vec::new(), Vec::new());
    for _ in 0..count {
        let c = crate::rng::below(&mut rng, 10) as usize;
        let at = (c % 4) * 2;
        for r in 0..side {
            for col in 0..side {
                let horizontal = !(4..8).contains(&c) && (r == at || r == at + 1);
                let vertical = c >= 4 && (col == at || col == at + 1);
                let base = if horizontal || vertical { 245.0 } else { 5.0 };
                let v = base + 10.0 * (rng.next_f64() - 0.5);
                images.push(v.clamp(0.0, 255.0) as u8);
            }
        }
        labels.push(c as u8);
    }
    Digits::new(side, side, images, labels, count).unwrap()
}

fn small_spec(generations: usize, epochs: usize) -> VaeSpec {
    VaeSpec {
        batch: 32,
        eval_images: 100,
        ..VaeSpec::new(Arch::Mlp, generations, epochs, 1)
    }
}

fn run(spec: &VaeSpec, data: &DataSplit, control: &mut Control) -> Result<VaeRun, VaeError> {
    simulate(spec, data, control)
}

fn quiet_run(spec: &VaeSpec, data: &DataSplit) -> VaeRun {
    simulate_in_memory(spec, data).unwrap()
}

/// The run with its wall times zeroed (everything else is deterministic).
fn without_time(mut run: VaeRun) -> VaeRun {
    for s in &mut run.seeds {
        for g in &mut s.generations {
            g.seconds = 0.0;
        }
    }
    run
}

fn data(count: usize) -> DataSplit {
    DataSplit::new("synthetic", synthetic_digits(count)).unwrap()
}

#[test]
fn parameter_counts_are_the_layer_sums() {
    let mut rng = ChainRng::for_chain(1, stream::TEST, 0);
    // Linear(a, b) has a b + b parameters; Conv(i, o, k) i o k^2 + o; ConvT(i, o, k) i o k^2 + o.
    let linear = |a: usize, b: usize| a * b + b;
    let conv = |i: usize, o: usize, k: usize| i * o * k * k + o;
    let mut mlp = Vae::new(Arch::Mlp, 28, 28, 20, &mut rng).unwrap();
    let want_mlp = linear(784, 400) + 2 * linear(400, 20) + linear(20, 400) + linear(400, 784);
    assert_eq!(mlp.parameter_count(), want_mlp);
    let mut paper = Vae::new(Arch::Paper, 28, 28, 20, &mut rng).unwrap();
    let want_paper = conv(1, 64, 4)
        + conv(64, 128, 4)
        + 2 * linear(128 * 7 * 7, 20)
        + linear(20, 128 * 7 * 7)
        + conv(128, 64, 4)
        + conv(64, 1, 4);
    assert_eq!(want_paper, 647_081, "the paper's count");
    assert_eq!(paper.parameter_count(), want_paper);
    assert!(Vae::new(Arch::Paper, 30, 30, 20, &mut rng).is_err());
    assert!(Vae::new(Arch::Mlp, 28, 28, 0, &mut rng).is_err());
}

#[test]
fn export_and_import_round_trip() {
    let mut rng = ChainRng::for_chain(2, stream::TEST, 0);
    for arch in [Arch::Mlp, Arch::Paper] {
        let mut a = Vae::new(arch, 8, 8, 3, &mut rng).unwrap();
        let mut b = Vae::new(arch, 8, 8, 3, &mut rng).unwrap();
        let pa = a.export();
        assert_ne!(pa, b.export());
        b.import(&pa).unwrap();
        assert_eq!(b.export(), pa);
        assert!(b.import(&pa[1..]).is_err());
    }
}

/// Training lowers the held-out negative ELBO well below the untrained model's, for both
/// networks (8x8 images of ten bar patterns).
#[test]
fn training_learns_both_architectures() {
    let data = data(400);
    for arch in [Arch::Mlp, Arch::Paper] {
        let mut rng = ChainRng::for_chain(3, stream::TEST, 0);
        let mut model = Vae::new(arch, 8, 8, LATENT, &mut rng).unwrap();
        let heldout = data.digits.batch(&data.heldout);
        let batch = data.heldout.len();
        let before = model.neg_elbo(&heldout, batch, &mut rng) / batch as f64;
        let mut adam = Adam::new(1e-3, 1e-5).unwrap();
        for _ in 0..40 {
            for chunk in data.train.chunks(32) {
                let x = data.digits.batch(chunk);
                model
                    .train_step(&x, chunk.len(), &mut rng, &mut adam)
                    .unwrap();
            }
        }
        let after = model.neg_elbo(&heldout, batch, &mut rng) / batch as f64;
        // Untrained: ~64 ln 2 = 44 nats per image; the bars are nearly binary, so a trained
        // model's reconstruction costs a fraction of that.
        assert!(after < 0.6 * before, "{}: {before} -> {after}", arch.name());
    }
}

#[test]
fn runs_are_deterministic_for_any_thread_count() {
    let data = data(200);
    let spec = VaeSpec {
        seeds: 2,
        strategy: Strategy::Mix(0.25),
        ..small_spec(3, 2)
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| quiet_run(&spec, &data))
    };
    let one = without_time(in_pool(1));
    assert!(one == without_time(in_pool(2)), "1 and 2 threads differ");
    assert!(
        one == without_time(in_pool(1)),
        "two runs on 1 thread differ"
    );
    assert!(one.seeds[0] != one.seeds[1], "seeds are independent runs");
    assert_eq!(one.seeds.len(), 2);
    assert_eq!(one.seeds[0].generations.len(), 3);
    // Seed s of a multi-seed run is the run of seed s alone.
    let alone = without_time(quiet_run(
        &VaeSpec {
            seed: 1,
            seeds: 1,
            ..spec.clone()
        },
        &data,
    ));
    assert!(alone.seeds[0] == one.seeds[1], "seed 1 alone differs");
}

#[test]
fn interrupted_and_resumed_run_equals_the_uninterrupted_one() {
    let data = data(200);
    let spec = VaeSpec {
        synthetic: Synthetic::Fixed,
        strategy: Strategy::Accumulate,
        ..small_spec(3, 3)
    };
    let whole = quiet_run(&spec, &data);
    let dir = std::env::temp_dir().join(format!("collapse-vae-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Stop after every few epochs, then resume, until the run completes.
    let mut interruptions = 0;
    let result = loop {
        let stop = AtomicBool::new(false);
        let mut epochs = 0;
        let mut progress = |e: Event| {
            if let Event::Epoch { .. } = e {
                epochs += 1;
                if epochs == 2 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        };
        let mut control = Control {
            checkpoint_dir: Some(dir.clone()),
            resume: true,
            checkpoint_every: Duration::from_secs(3600),
            stop: &stop,
            progress: &mut progress,
        };
        match run(&spec, &data, &mut control) {
            Ok(r) => break r,
            Err(VaeError::Interrupted) => interruptions += 1,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(interruptions >= 3, "{interruptions} interruptions");
    assert!(
        without_time(result) == without_time(whole),
        "the resumed run differs"
    );

    // The finished checkpoint: refused without --resume, refused for another spec, refused
    // when damaged.
    let stop = AtomicBool::new(false);
    let mut progress = |_: Event| {};
    let mut control = Control {
        checkpoint_dir: Some(dir.clone()),
        resume: false,
        checkpoint_every: Duration::ZERO,
        stop: &stop,
        progress: &mut progress,
    };
    let err = run(&spec, &data, &mut control).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    control.resume = true;
    let other = VaeSpec {
        epochs: 4,
        ..spec.clone()
    };
    let err = run(&other, &data, &mut control).unwrap_err().to_string();
    assert!(err.contains("another run"), "{err}");
    let file = checkpoint::path(&dir, 0);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let err = run(&spec, &data, &mut control).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
    std::fs::write(&file, &bytes[..middle]).unwrap();
    let err = run(&spec, &data, &mut control).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn strategies_build_the_stated_training_sets() {
    let n = 50;
    let kept: Vec<u32> = (0..n as u32).rev().collect();
    let mut rng = ChainRng::for_chain(4, stream::TEST, 0);
    let count = |items: &[Item]| {
        let real = items.iter().filter(|i| matches!(i, Item::Real(_))).count();
        let set = items.iter().filter(|i| matches!(i, Item::Set(..))).count();
        let fresh = items.iter().filter(|i| matches!(i, Item::Fresh)).count();
        (real, set, fresh)
    };
    let spec = |strategy, synthetic| VaeSpec {
        strategy,
        synthetic,
        ..small_spec(4, 1)
    };
    let mut items = |s: &VaeSpec, g| epoch_items(s, g, n, &kept, &mut rng);
    let replace = spec(Strategy::Replace, Synthetic::Fresh);
    assert_eq!(count(&items(&replace, 0)), (50, 0, 0));
    assert_eq!(count(&items(&replace, 2)), (0, 0, 50));
    let fixed = spec(Strategy::Replace, Synthetic::Fixed);
    assert_eq!(count(&items(&fixed, 2)), (0, 50, 0));
    assert!(
        items(&fixed, 2)
            .iter()
            .all(|i| matches!(i, Item::Set(1, _)))
    );
    let keep = spec(Strategy::Keep(0.1), Synthetic::Fresh);
    let k = items(&keep, 3);
    assert_eq!(count(&k), (5, 0, 45));
    let kept_real: Vec<u32> = k
        .iter()
        .filter_map(|i| match i {
            Item::Real(r) => Some(*r),
            _ => None,
        })
        .collect();
    assert_eq!(
        kept_real,
        [49, 48, 47, 46, 45],
        "the first K of the fixed order"
    );
    let mix = spec(Strategy::Mix(0.3), Synthetic::Fresh);
    assert_eq!(count(&items(&mix, 1)), (15, 0, 35));
    let acc = spec(Strategy::Accumulate, Synthetic::Fresh);
    assert_eq!(count(&items(&acc, 3)), (50, 150, 0));
    let sub = spec(Strategy::AccumulateSubsample, Synthetic::Fresh);
    let s = items(&sub, 3);
    assert_eq!(s.len(), 50);
    assert!(needs_set(&sub, 3, 0) && !needs_set(&replace, 3, 2) && needs_set(&fixed, 3, 2));
    assert!(!needs_set(&fixed, 3, 1));
}

#[test]
fn bad_specs_are_refused_with_the_reason() {
    let ok = small_spec(2, 1);
    assert!(ok.validate().is_ok());
    let cases = [
        (
            VaeSpec {
                generations: 0,
                ..ok.clone()
            },
            "generations",
        ),
        (
            VaeSpec {
                epochs: 0,
                ..ok.clone()
            },
            "epochs",
        ),
        (
            VaeSpec {
                batch: 0,
                ..ok.clone()
            },
            "batch",
        ),
        (
            VaeSpec {
                seeds: 0,
                ..ok.clone()
            },
            "seeds",
        ),
        (
            VaeSpec {
                eval_images: 1,
                ..ok.clone()
            },
            "eval images",
        ),
        (
            VaeSpec {
                lr: f32::NAN,
                ..ok.clone()
            },
            "learning rate",
        ),
        (
            VaeSpec {
                weight_decay: -1.0,
                ..ok.clone()
            },
            "weight decay",
        ),
        (
            VaeSpec {
                seed: u64::MAX,
                seeds: 2,
                ..ok.clone()
            },
            "overflow",
        ),
        (
            VaeSpec {
                strategy: Strategy::Keep(1.5),
                ..ok.clone()
            },
            "fraction",
        ),
    ];
    for (spec, word) in cases {
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains(word), "{err} lacks {word}");
    }
    assert!(Arch::parse("cnn").is_err() && Synthetic::parse("stale").is_err());
}

#[test]
fn metrics_are_consistent() {
    let data = data(200);
    let r = quiet_run(&small_spec(2, 3), &data);
    let s = &r.seeds[0];
    assert!(s.classifier_accuracy > 0.9, "{}", s.classifier_accuracy);
    for g in &s.generations {
        let total: f64 = g.class_fractions.iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(g.class_entropy >= 0.0 && g.class_entropy <= 10f64.ln() + 1e-12);
        assert!(g.latent_std > 0.0 && g.pixel_std > 0.0 && g.heldout_neg_elbo > 0.0);
        assert_eq!(g.grid.len(), GRID_IMAGES * 64);
        assert_eq!(g.examples, 3 * data.train.len() as u64);
    }
    let summary = r.summary();
    assert_eq!(summary.len(), 2);
    assert_eq!(summary[1].latent_std.mean, s.generations[1].latent_std);
    assert!(
        summary[1].latent_std.stderr.is_nan(),
        "one seed: no standard error"
    );
    let m = MeanError::of(&[1.0, 2.0, 3.0]);
    assert_eq!((m.mean, m.stderr), (2.0, (1.0f64 / 3.0).sqrt()));
}
