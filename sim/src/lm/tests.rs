use super::*;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// A small corpus of English-like documents with a skewed word distribution.
fn toy_corpus(documents: usize) -> Corpus {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "from", "house",
        "quietly", "zebra", "quixotic",
    ];
    let docs: Vec<String> = (0..documents)
        .map(|d| {
            (0..300)
                .map(|i| {
                    // Rank r with weight about 1 / (r + 1): rare words exist but are rare.
                    let x = (d * 7919 + i * 104_729) % 1000;
                    let r = (0..words.len())
                        .find(|&r| x < 1000 - 1000 / (r + 2))
                        .unwrap_or(words.len() - 1);
                    words[r]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Corpus::new(&docs)
}

fn small_spec() -> LmSpec {
    let mut spec = LmSpec::new("toy", 2);
    spec.vocab_size = 300;
    spec.block = 16;
    spec.generations = 3;
    spec.decode = Decode::Beam {
        beams: 3,
        repetition_penalty: 3.0,
    };
    spec
}

fn quiet() -> impl FnMut(Event) + Send {
    |_| {}
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Checkpoints in `dir`, written at every chance.
fn in_dir<'a>(
    dir: &std::path::Path,
    resume: bool,
    stop: &'a AtomicBool,
    progress: &'a mut (dyn FnMut(Event) + Send),
) -> Control<'a> {
    Control {
        checkpoint_dir: Some(dir.to_path_buf()),
        resume,
        checkpoint_every: Duration::ZERO,
        stop,
        progress,
    }
}

#[test]
fn strategies_build_the_stated_training_sets() {
    let n = 10;
    let kept: Vec<u32> = (0..n as u32).rev().collect();
    let mut spec = small_spec();
    let count = |items: &[(Option<usize>, usize)], real: bool| {
        items.iter().filter(|i| i.0.is_none() == real).count()
    };
    spec.strategy = Strategy::Replace;
    let items = training_items(&spec, 2, n, &kept, 0);
    assert_eq!(items, (0..n).map(|i| (Some(0), i)).collect::<Vec<_>>());
    spec.strategy = Strategy::Mix(0.3);
    let items = training_items(&spec, 2, n, &kept, 0);
    assert_eq!((count(&items, true), count(&items, false)), (3, 7));
    let mut prompts: Vec<usize> = items.iter().map(|i| i.1).collect();
    prompts.sort_unstable();
    assert_eq!(prompts, (0..n).collect::<Vec<_>>(), "every prompt once");
    assert_ne!(
        items,
        training_items(&spec, 3, n, &kept, 0),
        "fresh draw per generation"
    );
    spec.strategy = Strategy::Keep(0.2);
    let items = training_items(&spec, 2, n, &kept, 0);
    assert_eq!(&items[..2], [(None, 9), (None, 8)]);
    assert_eq!(
        items,
        training_items(&spec, 3, n, &kept, 0),
        "the same real blocks"
    );
    spec.strategy = Strategy::Accumulate;
    let items = training_items(&spec, 3, n, &kept, 0);
    assert_eq!(items.len(), 4 * n);
    assert_eq!(count(&items, true), n);
    spec.strategy = Strategy::AccumulateSubsample;
    let items = training_items(&spec, 3, n, &kept, 0);
    assert_eq!(items.len(), n);
    assert!(items.iter().all(|i| i.0.is_none_or(|s| s < 3)));
}

#[test]
fn distinct_and_repetition_by_hand() {
    let blocks = vec![vec![1, 2, 1, 2, 1], vec![3, 3, 3, 3]];
    // Unigrams: 9, distinct {1, 2, 3}. Bigrams: 12 21 12 21 | 33 33 33: 7, distinct 3.
    assert!((distinct_n(&blocks, 1) - 3.0 / 9.0).abs() < 1e-15);
    assert!((distinct_n(&blocks, 2) - 3.0 / 7.0).abs() < 1e-15);
    // 4-grams: block 1: 1212, 2121 (2 of 2 distinct, rep 0); block 2: 3333 (1 of 1, rep 0).
    assert_eq!(seq_rep_4(&blocks), 0.0);
    let looped = vec![vec![5, 6, 5, 6, 5, 6, 5, 6]];
    // 4-grams 5656 6565 5656 6565 5656: 2 distinct of 5, rep 0.6.
    assert!((seq_rep_4(&looped) - 0.6).abs() < 1e-15);
}

#[test]
fn a_run_is_the_same_for_any_thread_count() {
    let corpus = toy_corpus(30);
    let mut spec = small_spec();
    spec.strategy = Strategy::Mix(0.1);
    spec.seeds = 2;
    let run = |threads| pool(threads).install(|| simulate(&corpus, &spec, &mut quiet()).unwrap());
    let (one, three) = (run(1), run(3));
    assert!(one.real_log10_perplexity == three.real_log10_perplexity);
    for (a, b) in one.seeds.iter().zip(&three.seeds) {
        for (g, (x, y)) in a.generations.iter().zip(&b.generations).enumerate() {
            assert!(x == y, "seed {} generation {g} differs", a.seed);
        }
    }
    assert!(one == three);
    // Mix draws differ between seeds, so the runs do.
    assert_ne!(one.seeds[0].generations[2], one.seeds[1].generations[2]);
}

#[test]
fn beam_search_under_replace_is_the_same_for_every_seed() {
    let corpus = toy_corpus(30);
    let mut spec = small_spec();
    spec.seeds = 2;
    assert!(!seed_matters(&spec));
    let run = simulate(&corpus, &spec, &mut quiet()).unwrap();
    // The shortcut (seed 1 copied from seed 0) equals running seed 1.
    let data = tokenize(&corpus, &spec).unwrap();
    let real: Vec<&[u32]> = data.train.iter().map(Vec::as_slice).collect();
    let ModelKind::Ngram { order } = spec.model else {
        unreachable!("an n-gram spec")
    };
    let base = Model::Ngram(NGram::fit(&real, data.tokenizer.vocab_size(), order).unwrap());
    let seed1 = run_seed(&spec, &data, &base, 1, &mut quiet()).unwrap();
    assert_eq!(run.seeds[1], seed1);
    assert_eq!(run.seeds[0].generations, seed1.generations);
    let g0 = &run.seeds[0].generations[0];
    assert!(g0.test_perplexity > 1.0 && g0.test_perplexity < run.vocab as f64);
    assert!(g0.surviving_types <= run.real_types);
    assert_eq!(g0.synthetic_log10_perplexity.len(), run.train_blocks);
    assert_eq!(run.real_log10_perplexity.len(), run.train_blocks);
    for (strategy, decode, matters) in [
        (Strategy::Accumulate, spec.decode, false),
        (Strategy::Mix(0.1), spec.decode, true),
        (Strategy::Keep(0.1), spec.decode, true),
        (Strategy::AccumulateSubsample, spec.decode, true),
        (Strategy::Replace, Decode::Sample, true),
    ] {
        let s = LmSpec {
            strategy,
            decode,
            ..spec.clone()
        };
        assert_eq!(seed_matters(&s), matters, "{strategy:?} {decode:?}");
    }
}

/// The collapse on a toy corpus: by sampling, rare types vanish from the synthetic data over
/// generations and never come back (a type absent from S_g has only the smoothing's mass in
/// model g + 1), while the test perplexity rises.
#[test]
fn sampled_generations_lose_types_and_gain_test_perplexity() {
    let corpus = toy_corpus(30);
    let mut spec = small_spec();
    spec.decode = Decode::Sample;
    spec.generations = 6;
    spec.max_blocks = Some(40);
    let run = simulate(&corpus, &spec, &mut quiet()).unwrap();
    let g = &run.seeds[0].generations;
    assert!(
        g[5].surviving_types < g[0].surviving_types,
        "{} {}",
        g[5].surviving_types,
        g[0].surviving_types
    );
    assert!(g[5].test_perplexity > g[0].test_perplexity);
}

#[test]
fn bad_specs_are_refused() {
    let corpus = toy_corpus(30);
    type Change = Box<dyn Fn(&mut LmSpec)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "order",
            Box::new(|s| s.model = ModelKind::Ngram { order: 0 }),
        ),
        (
            "order",
            Box::new(|s| s.model = ModelKind::Ngram { order: 5 }),
        ),
        ("vocab", Box::new(|s| s.vocab_size = 255)),
        ("block", Box::new(|s| s.block = 1)),
        ("generations", Box::new(|s| s.generations = 0)),
        ("seeds", Box::new(|s| s.seeds = 0)),
        (
            "seed",
            Box::new(|s| {
                s.seed = u64::MAX;
                s.seeds = 2
            }),
        ),
        ("blocks", Box::new(|s| s.max_blocks = Some(0))),
        (
            "beams",
            Box::new(|s| {
                s.decode = Decode::Beam {
                    beams: 0,
                    repetition_penalty: 1.0,
                }
            }),
        ),
        (
            "repetition penalty",
            Box::new(|s| {
                s.decode = Decode::Beam {
                    beams: 2,
                    repetition_penalty: f64::NAN,
                }
            }),
        ),
        (
            "repetition penalty",
            Box::new(|s| {
                s.decode = Decode::Beam {
                    beams: 2,
                    repetition_penalty: 0.5,
                }
            }),
        ),
        ("strategy", Box::new(|s| s.strategy = Strategy::Mix(1.5))),
    ];
    for (what, change) in cases {
        let mut spec = small_spec();
        change(&mut spec);
        match simulate(&corpus, &spec, &mut quiet()) {
            Err(SimError::Invalid { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    // A block longer than any document leaves no blocks.
    let mut spec = small_spec();
    spec.block = 4000;
    let err = simulate(&corpus, &spec, &mut quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("both parts need at least one"), "{err}");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("collapse-lm-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Stopped after every batch of prompts and every generation and resumed until done, a run equals the uninterrupted one
/// (accumulate: every synthetic set goes through the checkpoint); the checkpoints of another
/// spec, a damaged one, and one without --resume are refused.
#[test]
fn interrupted_and_resumed_run_equals_the_uninterrupted_one() {
    let corpus = toy_corpus(30);
    let mut spec = small_spec();
    spec.strategy = Strategy::AccumulateSubsample;
    spec.generations = 4;
    spec.seeds = 2;
    // One thread: 16 prompts per batch of continuations, each batch a place to stop.
    let pool = pool(1);
    let whole = pool.install(|| simulate(&corpus, &spec, &mut quiet()).unwrap());
    let dir = scratch("resume");
    let stop = AtomicBool::new(true);
    let mut progress = quiet();
    let mut stops = 0;
    let resumed = loop {
        let mut control = in_dir(&dir, stops > 0, &stop, &mut progress);
        match pool.install(|| simulate_with(&corpus, &spec, &mut control)) {
            Ok(run) => break run,
            Err(LmError::Interrupted) => stops += 1,
            Err(e) => panic!("{e}"),
        }
    };
    // Per seed: after every batch of prompts but a generation's last, and after generations
    // 0, 1, 2 (the last generation ends the seed).
    let batches = whole.train_blocks.div_ceil(PROMPTS_PER_THREAD);
    assert!(batches > 1);
    assert_eq!(stops, 2 * (4 * (batches - 1) + 3));
    assert!(resumed == whole, "the resumed run differs");
    let path = crate::checkpoint::path(&dir, spec.seed);
    let go = AtomicBool::new(false);
    let control = |resume| in_dir(&dir, resume, &go, Box::leak(Box::new(quiet())));
    let err = simulate_with(&corpus, &spec, &mut control(false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pass --resume"), "{err}");
    let mut other = spec.clone();
    other.generations = 5;
    let err = simulate_with(&corpus, &other, &mut control(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to another run"), "{err}");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = simulate_with(&corpus, &spec, &mut control(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("damaged (checksum mismatch)"), "{err}");
    std::fs::write(&path, &bytes[..20]).unwrap();
    let err = simulate_with(&corpus, &spec, &mut control(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("damaged"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn transformer_spec() -> LmSpec {
    let mut spec = small_spec();
    spec.block = 8;
    spec.max_blocks = Some(24);
    spec.model = ModelKind::Transformer(TransformerSpec {
        width: 16,
        layers: 1,
        heads: 2,
        base_epochs: 2,
        base_windows: Some(12),
        epochs: 2,
        batch: 8,
        base_lr: 3e-3,
        lr: 1e-3,
        weight_decay: 0.1,
    });
    spec
}

/// The transformer protocol: one base, fine-tuned at every generation; bit-identical for
/// any thread count; seeds differ (their fine-tuning orders do); generation 0 scores the
/// synthetic sets, and the real blocks are scored by the first seed's generation 0.
#[test]
fn a_transformer_run_is_the_same_for_any_thread_count() {
    let corpus = toy_corpus(30);
    let mut spec = transformer_spec();
    spec.seeds = 2;
    assert!(seed_matters(&spec));
    let run = |threads| pool(threads).install(|| simulate(&corpus, &spec, &mut quiet()).unwrap());
    let (one, three) = (run(1), run(3));
    assert!(one == three);
    assert_ne!(one.seeds[0].generations[1], one.seeds[1].generations[1]);
    let g0 = &one.seeds[0].generations[0];
    assert!(g0.test_perplexity > 1.0 && g0.test_perplexity < one.vocab as f64);
    assert_eq!(g0.synthetic_log10_perplexity.len(), one.train_blocks);
    // Generation 0 of seed 1 in isolation gives the same metrics.
    let data = tokenize(&corpus, &spec).unwrap();
    let stop = AtomicBool::new(false);
    let mut progress = quiet();
    let base = base_model(&spec, &data, &mut Control::in_memory(&stop, &mut progress)).unwrap();
    let seed1 = run_seed(&spec, &data, &base, spec.seed + 1, &mut quiet()).unwrap();
    assert_eq!(one.seeds[1], seed1);
}

/// The base trains before any generation, and a stop request during training is obeyed.
#[test]
fn a_transformer_run_reports_training_and_stops_on_request() {
    let corpus = toy_corpus(30);
    let spec = transformer_spec();
    let stop = AtomicBool::new(false);
    let mut steps = Vec::new();
    let mut progress = |e: Event| {
        if let Event::Training { seed, step, .. } = e {
            steps.push((seed, step));
            if seed.is_some() {
                stop.store(true, Ordering::SeqCst);
            }
        }
    };
    let err = simulate_with(
        &corpus,
        &spec,
        &mut Control::in_memory(&stop, &mut progress),
    )
    .unwrap_err();
    assert!(matches!(err, LmError::Interrupted), "{err}");
    // The base's steps (seed None), then one fine-tuning step before the stop.
    let base_steps = steps.iter().filter(|s| s.0.is_none()).count();
    assert_eq!(base_steps, 2 * 12usize.div_ceil(8));
    assert_eq!(steps.len(), base_steps + 1);
}

#[test]
fn transformer_settings_are_checked() {
    let corpus = toy_corpus(30);
    let ModelKind::Transformer(t) = transformer_spec().model else {
        unreachable!()
    };
    for (what, t) in [
        ("heads", TransformerSpec { heads: 3, ..t }),
        ("width", TransformerSpec { width: 0, ..t }),
        ("epochs", TransformerSpec { epochs: 0, ..t }),
        ("lr", TransformerSpec { lr: f32::NAN, ..t }),
        ("batch", TransformerSpec { batch: 0, ..t }),
    ] {
        let mut spec = transformer_spec();
        spec.model = ModelKind::Transformer(t);
        let err = simulate(&corpus, &spec, &mut quiet())
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{what}: {err}");
    }
}

/// Where a transformer run was when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Base,
    FineTuning,
    Continuing,
}

/// Runs `spec` in `dir` (checkpoints after every step and batch of prompts), stopping three
/// events after each start and resuming until done; the phases it stopped in.
fn run_with_stops(
    corpus: &Corpus,
    spec: &LmSpec,
    dir: &std::path::Path,
    seeds: Option<std::ops::Range<usize>>,
) -> (Option<LmRun>, Vec<Phase>) {
    let stop = AtomicBool::new(false);
    let events = AtomicUsize::new(0);
    let mut phases = Vec::new();
    loop {
        let last = std::sync::Mutex::new(None);
        let stop_at = events.load(Ordering::SeqCst) + 3;
        stop.store(false, Ordering::SeqCst);
        let mut progress = |e: Event| {
            let phase = match e {
                Event::Training { seed: None, .. } => Some(Phase::Base),
                Event::Training { .. } => Some(Phase::FineTuning),
                Event::Continued { .. } => Some(Phase::Continuing),
                _ => None,
            };
            if phase.is_some() && events.fetch_add(1, Ordering::SeqCst) + 1 >= stop_at {
                *last.lock().unwrap() = phase;
                stop.store(true, Ordering::SeqCst);
            }
        };
        let mut control = in_dir(dir, !phases.is_empty(), &stop, &mut progress);
        let result = match &seeds {
            None => simulate_with(corpus, spec, &mut control).map(Some),
            Some(range) => simulate_seeds(corpus, spec, range.clone(), &mut control).map(|_| None),
        };
        match result {
            Ok(run) => return (run, phases),
            Err(LmError::Interrupted) => phases.push(last.into_inner().unwrap().expect("a phase")),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The run whose checkpoints are all in `dir`, resumed, and the training steps and batches
/// of prompts it ran.
fn resume_finished(corpus: &Corpus, spec: &LmSpec, dir: &std::path::Path) -> (LmRun, usize) {
    let stop = AtomicBool::new(false);
    let mut work = 0;
    let mut progress = |e: Event| {
        if matches!(e, Event::Training { .. } | Event::Continued { .. }) {
            work += 1;
        }
    };
    let mut control = in_dir(dir, true, &stop, &mut progress);
    let run = simulate_with(corpus, spec, &mut control).unwrap();
    (run, work)
}

/// Stopped within the base's training, the fine-tunings and the continuations (checkpoints
/// after every step and batch of prompts) and resumed each time, a transformer run equals the
/// uninterrupted one; a finished run resumed trains nothing (base, generation 0 and every
/// generation come from the checkpoints); seeds run as two shards and assembled equal it too.
#[test]
fn a_transformer_run_stopped_anywhere_resumes_to_the_same_bits() {
    let corpus = toy_corpus(30);
    let mut spec = transformer_spec();
    spec.seeds = 2;
    // One thread: 16 prompts per batch, so the 24 prompts of a generation take two.
    let pool = pool(1);
    let whole = pool.install(|| simulate(&corpus, &spec, &mut quiet()).unwrap());
    let dir = scratch("transformer-stops");
    let (resumed, phases) = pool.install(|| run_with_stops(&corpus, &spec, &dir, None));
    assert!(resumed.unwrap() == whole, "the resumed run differs");
    for phase in [Phase::Base, Phase::FineTuning, Phase::Continuing] {
        assert!(
            phases.contains(&phase),
            "never stopped in {phase:?}: {phases:?}"
        );
    }

    let (again, work) = resume_finished(&corpus, &spec, &dir);
    assert!(again == whole);
    assert_eq!(work, 0, "a finished run resumed did work again");
    std::fs::remove_dir_all(&dir).unwrap();

    // Two shards (each stopped and resumed), then the whole run assembles their seeds.
    let dir = scratch("transformer-shards");
    for shard in [1..2, 0..1] {
        let (run, _) = pool.install(|| run_with_stops(&corpus, &spec, &dir, Some(shard)));
        assert!(run.is_none());
    }
    let (assembled, work) = resume_finished(&corpus, &spec, &dir);
    assert!(assembled == whole, "the assembled run differs");
    assert_eq!(work, 0, "assembling the shards did work again");
    let stop = AtomicBool::new(false);
    // A base of other settings in the folder is refused.
    let ModelKind::Transformer(t) = spec.model else {
        unreachable!()
    };
    let mut other = spec.clone();
    other.model = ModelKind::Transformer(TransformerSpec {
        base_epochs: 3,
        ..t
    });
    let mut progress = quiet();
    let mut control = in_dir(&dir, true, &stop, &mut progress);
    let err = simulate_with(&corpus, &other, &mut control)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("base.ckpt") && err.contains("belongs to another run"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
