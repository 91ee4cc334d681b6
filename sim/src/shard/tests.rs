use super::*;
use crate::gaussian::{self, EnsembleConfig, Method};
use collapse_analysis::truth::Truth;
use collapse_analysis::{Estimator, GaussianSpec, Schedule, Strategy};
use proptest::prelude::*;

fn gaussian_spec(m: u64, n: u64, strategy: Strategy) -> GaussianSpec {
    GaussianSpec::new(Schedule::constant(m), Estimator::Unbiased, 1.0, n)
        .unwrap()
        .with_strategy(strategy)
        .unwrap()
}

fn header(spec: &GaussianSpec, cfg: &EnsembleConfig) -> RunHeader {
    RunHeader {
        version: "test".into(),
        process: "gaussian".into(),
        identity: format!("{spec:?} {} {}", cfg.seed, cfg.method.name()),
        chains: cfg.chains,
        generations: spec.generations,
        layout: gaussian::LAYOUT,
    }
}

/// Pieces of a gaussian run split at `cuts`, recorded, shuffled, checked and merged.
fn merged(spec: &GaussianSpec, cfg: &EnsembleConfig, cuts: &[u64]) -> gaussian::GaussianRun {
    let stop = AtomicBool::new(false);
    let head = header(spec, cfg);
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(cfg.chains);
    let mut records: Vec<PieceRecord> = bounds
        .windows(2)
        .map(|w| {
            let owned = ChainRange {
                start: w[0],
                end: w[1],
            };
            run_piece(&head, owned, &stop, &mut |o, s| {
                gaussian::simulate_piece(spec, cfg, o, s)
            })
            .unwrap()
        })
        .collect();
    records.reverse();
    let middle = records.len() / 2;
    records.swap(0, middle);
    let records = check_set(records).unwrap();
    merge(&records, gaussian::Assembler::new(spec, cfg)).unwrap()
}

fn same_bits(a: &gaussian::GaussianRun, b: &gaussian::GaussianRun) -> bool {
    format!("{:?}{:?}", a.rows, a.final_chains) == format!("{:?}{:?}", b.rows, b.final_chains)
}

#[test]
fn shards_partition_the_chains() {
    for chains in [1u64, 2, 7, 256, 1000, 12_345] {
        for count in 1..=chains.min(20) {
            let mut at = 0;
            for i in 0..count {
                let r = ChainRange::shard(i, count, chains);
                assert_eq!(r.start, at);
                assert!(!r.is_empty(), "shard {i}/{count} of {chains} is empty");
                at = r.end;
            }
            assert_eq!(at, chains);
        }
    }
}

#[test]
fn spans_are_whole_blocks_around_the_owned_chains() {
    let layout = Layout {
        block: 256,
        block_words: 1,
        chain_values: 0,
    };
    let span = layout.span(
        ChainRange {
            start: 300,
            end: 520,
        },
        1000,
    );
    assert_eq!(
        span,
        ChainRange {
            start: 256,
            end: 768
        }
    );
    assert_eq!(layout.blocks(span), (1, 2));
    let last = layout.span(
        ChainRange {
            start: 900,
            end: 1000,
        },
        1000,
    );
    assert_eq!(
        last,
        ChainRange {
            start: 768,
            end: 1000
        }
    );
    assert_eq!(layout.blocks(last), (3, 1));
}

#[test]
fn gaussian_pieces_merge_to_the_bits_of_the_whole_run() {
    let strategies = [
        Strategy::Replace,
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
        Strategy::Mix(0.25),
        Strategy::Keep(0.25),
    ];
    let chains = 3 * 256 + 17;
    // Cuts inside blocks, on a block boundary, and a one-chain piece.
    let cuts = [5, 259, 512, 700, 701];
    for strategy in strategies {
        for method in [Method::Exact, Method::Sufficient] {
            if strategy == Strategy::AccumulateSubsample && method == Method::Sufficient {
                continue;
            }
            let spec = gaussian_spec(8, 6, strategy);
            let cfg = EnsembleConfig::new(chains, 11, method);
            let whole = gaussian::simulate(&spec, &cfg).unwrap();
            let joined = merged(&spec, &cfg, &cuts);
            assert!(same_bits(&whole, &joined), "{strategy:?} {method:?}");
        }
    }
    // A non-normal truth (its first generation is drawn point by point).
    let spec = GaussianSpec::new(Schedule::constant(8), Estimator::Unbiased, 1.0, 5)
        .unwrap()
        .with_truth(Truth::parse("student:5").unwrap())
        .unwrap();
    let cfg = EnsembleConfig::new(600, 3, Method::Exact);
    assert!(same_bits(
        &gaussian::simulate(&spec, &cfg).unwrap(),
        &merged(&spec, &cfg, &[1, 300])
    ));
}

#[test]
fn a_merge_of_a_different_run_is_caught() {
    // The check compares what decides the bits, so a piece of another seed cannot slip in.
    let spec = gaussian_spec(8, 3, Strategy::Replace);
    let stop = AtomicBool::new(false);
    let piece = |seed: u64, owned: ChainRange| {
        let cfg = EnsembleConfig::new(100, seed, Method::Exact);
        run_piece(&header(&spec, &cfg), owned, &stop, &mut |o, s| {
            gaussian::simulate_piece(&spec, &cfg, o, s)
        })
        .unwrap()
    };
    let a = piece(1, ChainRange { start: 0, end: 50 });
    let b = piece(
        2,
        ChainRange {
            start: 50,
            end: 100,
        },
    );
    let err = check_set(vec![a.clone(), b]).unwrap_err().to_string();
    assert!(err.contains("spec or seed differs"), "{err}");
    let err = check_set(vec![a.clone()]).unwrap_err().to_string();
    assert!(err.contains("[50, 100) are missing"), "{err}");
    let mut other_version = a.clone();
    other_version.run.version = "0.0.0".into();
    let err = check_set(vec![a.clone(), other_version])
        .unwrap_err()
        .to_string();
    assert!(err.contains("different versions"), "{err}");
    let err = check_set(vec![a.clone(), a]).unwrap_err().to_string();
    assert!(err.contains("overlap"), "{err}");
    assert!(check_set(Vec::new()).is_err());
}

fn small_record() -> PieceRecord {
    let spec = gaussian_spec(5, 2, Strategy::Replace);
    let cfg = EnsembleConfig::new(40, 9, Method::Sufficient);
    let stop = AtomicBool::new(false);
    let mut r = run_piece(
        &header(&spec, &cfg),
        ChainRange { start: 3, end: 40 },
        &stop,
        &mut |o, s| gaussian::simulate_piece(&spec, &cfg, o, s),
    )
    .unwrap();
    r.command = "[\"simulate\"]".into();
    r
}

/// Whether `bytes`, written to a file, read back as records (payloads included).
fn decode(bytes: &[u8], name: &str) -> Result<usize, ShardError> {
    let dir = temp_dir(name);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.piece");
    fs::write(&path, bytes).unwrap();
    let records = read_file(&path).and_then(|rs| {
        // Payloads are read lazily: read them now, before the file goes.
        for r in &rs {
            encode(r)?;
        }
        Ok(rs.len())
    });
    fs::remove_dir_all(&dir).unwrap();
    records
}

#[test]
fn records_round_trip_through_their_bytes() {
    let r = small_record();
    let bytes = encode(&r).unwrap();
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    let dir = temp_dir("roundtrip");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("two.piece");
    fs::write(&path, &two).unwrap();
    let back = read_file(&path).unwrap();
    assert_eq!(back.len(), 2);
    for b in back {
        assert_eq!(b.run, r.run);
        assert_eq!(b.owned, r.owned);
        assert_eq!(b.command, r.command);
        assert_eq!(b.ends, r.ends);
        // The payload, read from the file, gives the same bytes.
        assert_eq!(encode(&b).unwrap(), bytes);
    }
    fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    /// Any flipped bit or any truncation is refused, never read as data.
    #[test]
    fn corruption_is_refused(position in 0.0f64..1.0, bit in 0u8..8, cut in 0.0f64..1.0) {
        let bytes = encode(&small_record()).unwrap();
        let mut flipped = bytes.clone();
        let at = ((bytes.len() - 1) as f64 * position) as usize;
        flipped[at] ^= 1 << bit;
        prop_assert!(decode(&flipped, "flip").is_err());
        let len = ((bytes.len() - 1) as f64 * cut) as usize;
        prop_assert!(decode(&bytes[..len], "cut").is_err());
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("collapse-shard-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn checkpoints_resume_where_they_stopped_and_refuse_what_is_not_theirs() {
    let spec = gaussian_spec(6, 4, Strategy::Replace);
    let cfg = EnsembleConfig::new(5 * 256 + 3, 4, Method::Exact);
    let head = header(&spec, &cfg);
    let whole = gaussian::simulate(&spec, &cfg).unwrap();
    let dir = temp_dir("resume");
    let cp = Checkpoint {
        dir: dir.clone(),
        every: Duration::ZERO,
        resume: false,
        min_unit: 256,
    };
    let all = ChainRange::all(cfg.chains);
    // Stop after two units: the third sees the stop flag at its first generation boundary.
    let stop = AtomicBool::new(false);
    let mut calls = 0;
    let err = run_checkpointed(
        &head,
        "cmd",
        all,
        &cp,
        &stop,
        &mut |o, s| {
            calls += 1;
            if calls == 3 {
                stop.store(true, Ordering::Relaxed);
            }
            gaussian::simulate_piece(&spec, &cfg, o, s)
        },
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, ShardError::Interrupted { saved: 512, .. }),
        "{err}"
    );
    // A leftover temporary file of a killed write is removed, not read.
    fs::write(dir.join(".unit-x.piece.1.tmp"), b"partial").unwrap();
    // Without --resume, the saved units are refused.
    stop.store(false, Ordering::Relaxed);
    let mut piece =
        |o: ChainRange, s: &mut dyn PieceSink| gaussian::simulate_piece(&spec, &cfg, o, s);
    let err =
        run_checkpointed(&head, "cmd", all, &cp, &stop, &mut piece, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // A different run's checkpoint is refused.
    let resume = Checkpoint {
        resume: true,
        ..cp.clone()
    };
    let mut other = head.clone();
    other.identity.push('x');
    let err = run_checkpointed(
        &other,
        "cmd",
        all,
        &resume,
        &stop,
        &mut piece,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("different run"), "{err}");
    // Resumed, only the missing chains run, and the merge has the whole run's bits.
    let mut ran = 0;
    let records = run_checkpointed(
        &head,
        "cmd",
        all,
        &resume,
        &stop,
        &mut |o, s| {
            ran += o.len();
            gaussian::simulate_piece(&spec, &cfg, o, s)
        },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(ran, cfg.chains - 512);
    assert!(!dir.join(".unit-x.piece.1.tmp").exists());
    let joined = merge(
        &check_set(records).unwrap(),
        gaussian::Assembler::new(&spec, &cfg),
    )
    .unwrap();
    assert!(same_bits(&whole, &joined));
    // A corrupt unit is refused with its name.
    let unit = unit_path(&dir, ChainRange { start: 0, end: 256 });
    let mut bytes = fs::read(&unit).unwrap();
    bytes[100] ^= 1;
    fs::write(&unit, bytes).unwrap();
    let err = run_checkpointed(
        &head,
        "cmd",
        all,
        &resume,
        &stop,
        &mut piece,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("checksum") && err.contains("unit-"), "{err}");
    remove_checkpoint(&cp).unwrap();
    assert!(!dir.exists());
}

#[test]
fn atomic_writes_leave_no_temporary_file() {
    let dir = temp_dir("atomic");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.bin");
    write_atomic(&path, b"one").unwrap();
    write_atomic(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    // A folder that does not exist: an error, nothing written.
    assert!(write_atomic(&dir.join("no/such/file"), b"x").is_err());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn joined_units_are_the_record_of_one_piece() {
    let spec = gaussian_spec(6, 5, Strategy::Replace);
    let cfg = EnsembleConfig::new(4 * 256 + 9, 2, Method::Sufficient);
    let head = header(&spec, &cfg);
    let stop = AtomicBool::new(false);
    let mut piece =
        |o: ChainRange, s: &mut dyn PieceSink| gaussian::simulate_piece(&spec, &cfg, o, s);
    // Owned [100, 1000): units cut on block boundaries, as checkpoints cut them.
    let cuts = [100u64, 256, 768, 1000];
    let units: Vec<PieceRecord> = cuts
        .windows(2)
        .map(|w| {
            run_piece(
                &head,
                ChainRange {
                    start: w[0],
                    end: w[1],
                },
                &stop,
                &mut piece,
            )
            .unwrap()
        })
        .collect();
    let one = run_piece(
        &head,
        ChainRange {
            start: 100,
            end: 1000,
        },
        &stop,
        &mut piece,
    )
    .unwrap();
    let dir = temp_dir("join");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("joined.piece");
    join_to_file(&units, &gaussian::Assembler::new(&spec, &cfg), &path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), encode(&one).unwrap());
    fs::remove_dir_all(&dir).unwrap();
}
