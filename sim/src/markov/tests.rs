use super::*;
use collapse_analysis::markov::theory::{Initial, MarkovSpec, theory};
use proptest::prelude::*;
use std::sync::atomic::AtomicBool;

fn spec(m: u64, k: u64, init: &str, n: u64) -> MarkovSpec {
    MarkovSpec::new(m, k, Initial::parse(init).unwrap(), n).unwrap()
}

proptest! {
    #[test]
    fn steps_keep_the_invariants(
        m in 1u64..200,
        weights in proptest::collection::vec(0u32..5, 1..12),
        seed in 0u64..1000,
        labels_method in any::<bool>(),
    ) {
        let method = if labels_method { MarkovMethod::Labels } else { MarkovMethod::Binomial };
        let mut rng = ChainRng::for_chain(seed, stream::TEST, 0);
        let positive: Vec<(u32, f64)> = weights
            .iter()
            .enumerate()
            .filter(|&(_, &w)| w > 0)
            .map(|(i, &w)| (i as u32, f64::from(w)))
            .collect();
        prop_assume!(!positive.is_empty());
        let mut tails: Vec<f64> = positive.iter().map(|&(_, w)| w).collect();
        for i in (0..tails.len().saturating_sub(1)).rev() {
            tails[i] += tails[i + 1];
        }
        let (mut alive, mut next) = (Vec::new(), Vec::new());
        let mut scratch = Scratch::default();
        step_from_initial(&mut rng, m, &positive, &tails, method, &mut alive);
        for _ in 0..30 {
            // Counts sum to M, categories are distinct, none is zero, none is new.
            prop_assert_eq!(alive.iter().map(|&(_, c)| u64::from(c)).sum::<u64>(), m);
            let mut categories: Vec<u32> = alive.iter().map(|&(c, _)| c).collect();
            categories.sort_unstable();
            categories.dedup();
            prop_assert_eq!(categories.len(), alive.len());
            prop_assert!(alive.iter().all(|&(c, n)| n > 0 && weights[c as usize] > 0));
            step(&mut rng, m, &alive, method, &mut scratch, &mut next);
            // A lost category never returns.
            prop_assert!(next.iter().all(|&(c, _)| alive.iter().any(|&(a, _)| a == c)));
            if alive.len() == 1 {
                // A point mass stays.
                prop_assert_eq!(&next, &alive);
            }
            std::mem::swap(&mut alive, &mut next);
        }
    }
}

/// One step from counts (6, 3, 2, 1), M = 12, with the small group below 3 (so two categories
/// draw binomials and two share the rest by parent picks), against the exact multinomial law
/// over all 455 compositions: chi-square at a false-alarm rate of 1e-6, 2e5 steps. The same
/// statistic for the law of (5, 4, 2, 1) must exceed it (the test's power).
#[test]
fn mixed_step_has_the_multinomial_law() {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let (m, state) = (12u64, vec![(0u32, 6u32), (1, 3), (2, 2), (3, 1)]);
    let steps = 200_000u64;
    let mut rng = ChainRng::for_chain(9, stream::TEST, 0);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..steps {
        step_binomial(&mut rng, m, &state, 3, &mut scratch, &mut out);
        let mut counts = [0u32; 4];
        for &(c, n) in &out {
            counts[c as usize] += n;
        }
        *seen.entry(counts).or_insert(0u64) += 1;
    }
    let ln_factorial = |k: u32| (1..=k).map(|j| f64::from(j).ln()).sum::<f64>();
    let law = |counts: [u32; 4], p: [f64; 4]| {
        (ln_factorial(12)
            + counts
                .iter()
                .zip(p)
                .map(|(&c, p)| f64::from(c) * p.ln() - ln_factorial(c))
                .sum::<f64>())
        .exp()
    };
    let chi_square = |p: [f64; 4]| {
        // Cells merged in a fixed order until each expects at least 20.
        let (mut stat, mut cells, mut obs, mut exp) = (0.0, 0usize, 0.0, 0.0);
        for a in 0..=12u32 {
            for b in 0..=12 - a {
                for c in 0..=12 - a - b {
                    let counts = [a, b, c, 12 - a - b - c];
                    obs += *seen.get(&counts).unwrap_or(&0) as f64;
                    exp += law(counts, p) * steps as f64;
                    if exp >= 20.0 {
                        stat += (obs - exp) * (obs - exp) / exp;
                        cells += 1;
                        (obs, exp) = (0.0, 0.0);
                    }
                }
            }
        }
        stat += (obs - exp) * (obs - exp) / exp.max(1e-9);
        (stat, cells)
    };
    let (stat, cells) = chi_square([0.5, 0.25, 2.0 / 12.0, 1.0 / 12.0]);
    let critical = ChiSquared::new(cells as f64)
        .unwrap()
        .inverse_cdf(1.0 - 1e-6);
    assert!(stat < critical, "chi2 {stat} >= {critical} ({cells} cells)");
    let (wrong, _) = chi_square([5.0 / 12.0, 4.0 / 12.0, 2.0 / 12.0, 1.0 / 12.0]);
    assert!(wrong > critical, "power: chi2 {wrong} <= {critical}");
}

#[test]
fn identical_for_any_thread_count() {
    for method in [MarkovMethod::Binomial, MarkovMethod::Labels] {
        let s = spec(20, 6, "zipf:1.1", 15);
        let mut cfg = MarkovConfig::new(203, 4, method);
        cfg.threads = Some(1);
        let a = simulate(&s, &cfg).unwrap();
        cfg.threads = Some(3);
        let b = simulate(&s, &cfg).unwrap();
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.absorption_times, b.absorption_times);
        assert_eq!(a.final_survival, b.final_survival);
    }
}

/// Simulation against exact theory: K = 5, q = (.5, .25, .15, .07, .03), M = 30, R = 10^5,
/// both methods. |z| < 5 for E[H_n] and E[surviving] at every n <= 20; with this many chains a
/// theory 1% off would give |z| > 5 for the heterozygosity (checked).
#[test]
fn simulation_agrees_with_theory() {
    let s = spec(30, 5, "probs:0.5,0.25,0.15,0.07,0.03", 20);
    let t = theory(&s, 20).unwrap();
    for method in [MarkovMethod::Binomial, MarkovMethod::Labels] {
        let run = simulate(&s, &MarkovConfig::new(100_000, 11, method)).unwrap();
        for (row, th) in run.rows.iter().zip(&t.rows).skip(1) {
            for (emp, exact) in [
                (&row.heterozygosity, th.expected_heterozygosity.to_f64()),
                (&row.surviving, th.expected_surviving.to_f64()),
            ] {
                let z = (emp.mean - exact) / emp.stderr;
                assert!(z.abs() < 5.0, "{method:?} n = {}: z = {z}", row.n);
            }
        }
        let (row, th) = (&run.rows[10], &t.rows[10]);
        let wrong = 1.01 * th.expected_heterozygosity.to_f64();
        assert!(((row.heterozygosity.mean - wrong) / row.heterozygosity.stderr).abs() > 5.0);
    }
}

/// K = 2, M = 10, p = 1/2: the exact E[T] = 12.5905..., Var[T] = 92.65...; R = 10^5 chains run
/// for 400 generations (P(T > n) decays like 0.9^n: ~1e-18 at 400), so every chain is absorbed.
#[test]
fn absorption_time_agrees_with_theory() {
    let s = spec(10, 2, "uniform", 400);
    let t = theory(&s, 20).unwrap();
    let run = simulate(&s, &MarkovConfig::new(100_000, 5, MarkovMethod::Binomial)).unwrap();
    assert!(run.absorption_times.iter().all(Option::is_some));
    let mean = run.mean_absorption_time.unwrap();
    let exact = t.absorption.expected_time.unwrap().to_f64();
    let z = (mean.mean - exact) / mean.stderr;
    assert!(z.abs() < 5.0, "z = {z}: {} vs {exact}", mean.mean);
    // And P(T <= n) at n = 10 against the absorbed fraction (binomial s.e.).
    let p10 = t.rows[10].prob_absorbed.as_ref().unwrap().to_f64();
    let f10 = run.rows[10].absorbed_fraction;
    let se = (p10 * (1.0 - p10) / 100_000.0).sqrt();
    assert!(((f10 - p10) / se).abs() < 5.0, "{f10} vs {p10}");
    // Fixation probability = initial frequency: category 0 survives in about half the chains.
    let f = run.final_survival[0];
    assert!(
        ((f - 0.5) / (0.25f64 / 100_000.0).sqrt()).abs() < 5.0,
        "{f}"
    );
}

#[test]
fn bad_config_is_refused() {
    let s = spec(10, 2, "uniform", 3);
    assert!(simulate(&s, &MarkovConfig::new(0, 1, MarkovMethod::Binomial)).is_err());
    let mut cfg = MarkovConfig::new(3, 1, MarkovMethod::Binomial);
    cfg.threads = Some(0);
    assert!(simulate(&s, &cfg).is_err());
    assert!(MarkovMethod::parse("poisson").is_err());
}

/// The two samplers agree in distribution: per generation, the difference of their mean
/// heterozygosities and survivors is within 5 combined standard errors (R = 5e4 each,
/// independent streams by seed).
#[test]
fn binomial_and_labels_agree() {
    let s = spec(40, 6, "geometric:0.6", 25);
    let a = simulate(&s, &MarkovConfig::new(50_000, 21, MarkovMethod::Binomial)).unwrap();
    let b = simulate(&s, &MarkovConfig::new(50_000, 22, MarkovMethod::Labels)).unwrap();
    for (x, y) in a.rows.iter().zip(&b.rows).skip(1) {
        for (p, q) in [
            (&x.heterozygosity, &y.heterozygosity),
            (&x.surviving, &y.surviving),
        ] {
            let z = (p.mean - q.mean) / (p.stderr.powi(2) + q.stderr.powi(2)).sqrt();
            assert!(z.abs() < 5.0, "n = {}: z = {z}", x.n);
        }
    }
}

/// Parent picks are exactly uniform at every chunk width: a group of 200 individuals in 20
/// members of sizes 1..=20 (sum 210, cut to 200 by dropping 10 from the last), tallied over
/// 4e5 picks, against the multinomial law by chi-square at a false-alarm rate of 1e-6. Width 8
/// rejects 56 of 256 chunks, so it checks the rejection step itself: without it, parents
/// 0..=55 (in 8-bit chunks) would be picked twice as often, which the same test detects (power:
/// the statistic against the law of those biased picks exceeds the critical value).
#[test]
fn parent_picks_are_uniform() {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let mut parents = Vec::new();
    for member in 0..20u32 {
        parents.extend(std::iter::repeat_n(member, member as usize + 1));
    }
    parents.truncate(200);
    let picks = 400_000u64;
    let sizes: Vec<f64> = (0..20)
        .map(|m| parents.iter().filter(|&&p| p == m).count() as f64)
        .collect();
    // The law of 8-bit picks without rejection: chunk x picks parent (200 x) >> 8.
    let mut biased = [0.0f64; 20];
    for x in 0..256u64 {
        biased[parents[((x * 200) >> 8) as usize] as usize] += 1.0 / 256.0;
    }
    let chi_square = |tallies: &[u32], law: &dyn Fn(usize) -> f64| {
        (0..20)
            .map(|m| {
                let observed: u32 = tallies.chunks_exact(20).map(|t| t[m]).sum();
                let expected = law(m) * picks as f64;
                (f64::from(observed) - expected).powi(2) / expected
            })
            .sum::<f64>()
    };
    let critical = ChiSquared::new(19.0).unwrap().inverse_cdf(1.0 - 1e-6);
    let uniform = |m: usize| sizes[m] / 200.0;
    let mut rng = ChainRng::for_chain(3, stream::TEST, 0);
    let mut tallies = vec![0u32; 8 * 20];
    share_by_picks::<8>(&mut rng, &parents, &mut tallies, picks);
    let stat = chi_square(&tallies, &uniform);
    assert!(stat < critical, "8 bits: chi2 {stat} >= {critical}");
    let wrong = chi_square(&tallies, &|m| biased[m]);
    assert!(wrong > critical, "power: chi2 {wrong} <= {critical}");
    for (bits, per_word) in [(21, 3), (32, 2)] {
        let mut tallies = vec![0u32; per_word * 20];
        match bits {
            21 => share_by_picks::<21>(&mut rng, &parents, &mut tallies, picks),
            _ => share_by_picks::<32>(&mut rng, &parents, &mut tallies, picks),
        }
        let total: u32 = tallies.iter().sum();
        assert_eq!(u64::from(total), picks);
        let stat = chi_square(&tallies, &uniform);
        assert!(stat < critical, "{bits} bits: chi2 {stat} >= {critical}");
    }
}

fn header(s: &MarkovSpec, cfg: &MarkovConfig) -> shard::RunHeader {
    shard::RunHeader {
        version: "test".into(),
        process: "markov".into(),
        identity: format!("{s:?} {cfg:?}"),
        chains: cfg.chains,
        generations: u64::from(s.generations),
        layout: LAYOUT,
    }
}

/// Pieces with boundaries inside blocks (one-chain pieces included), run separately, written
/// to one piece file in a scrambled order, read back and merged, give the bits of the single
/// run: every row, absorption time and survival fraction. The specs cover a chain that is
/// absorbed at generation 0 (a point-mass start) and ones absorbed on the way.
#[test]
fn pieces_merge_to_the_bits_of_the_whole_run() {
    let r = 3 * CHUNK as u64 + 17;
    let cuts = [0, 5, 6, CHUNK as u64 + 3, 2 * CHUNK as u64, r - 1, r];
    let dir = std::env::temp_dir().join(format!("collapse-markov-pieces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for s in [
        spec(20, 6, "zipf:1.1", 12),
        spec(6, 2, "uniform", 30),
        spec(7, 3, "probs:1,0,0", 3),
    ] {
        for method in [MarkovMethod::Binomial, MarkovMethod::Labels] {
            let mut cfg = MarkovConfig::new(r, 17, method);
            let whole = simulate(&s, &cfg).unwrap();
            cfg.threads = Some(2);
            let head = header(&s, &cfg);
            let mut records: Vec<shard::PieceRecord> = cuts
                .windows(2)
                .map(|w| {
                    let owned = ChainRange {
                        start: w[0],
                        end: w[1],
                    };
                    let stop = AtomicBool::new(false);
                    shard::run_piece(&head, owned, &stop, &mut |o, sink| {
                        simulate_piece(&s, &cfg, o, sink)
                    })
                    .unwrap()
                })
                .collect();
            // A fixed scramble: the merge must not depend on the order pieces arrive in.
            let order = [3, 0, 5, 1, 4, 2];
            records = order.iter().map(|&i| records[i].clone()).collect();
            let path = dir.join("pieces");
            let bytes: Vec<u8> = records
                .iter()
                .flat_map(|r| shard::encode(r).unwrap())
                .collect();
            shard::write_atomic(&path, &bytes).unwrap();
            let read = shard::read_file(&path).unwrap();
            let set = shard::check_set(read).unwrap();
            let merged = shard::merge(&set, Assembler::new(&s, &cfg)).unwrap();
            let what = format!("{s:?} {method:?}");
            assert_eq!(
                format!("{:?}", merged.rows),
                format!("{:?}", whole.rows),
                "{what}"
            );
            assert_eq!(merged.absorption_times, whole.absorption_times, "{what}");
            assert_eq!(
                format!("{:?}", merged.mean_absorption_time),
                format!("{:?}", whole.mean_absorption_time),
                "{what}"
            );
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&merged.final_survival),
                bits(&whole.final_survival),
                "{what}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A piece whose sink asks to stop gives up at the first generation boundary.
#[test]
fn a_stopped_piece_is_interrupted() {
    let s = spec(20, 6, "zipf:1.1", 5);
    let cfg = MarkovConfig::new(100, 1, MarkovMethod::Binomial);
    let stop = AtomicBool::new(true);
    let owned = ChainRange { start: 10, end: 70 };
    let result = shard::run_piece(&header(&s, &cfg), owned, &stop, &mut |o, sink| {
        simulate_piece(&s, &cfg, o, sink)
    });
    assert!(matches!(result, Err(SimError::Interrupted)));
    let mut recorder = shard::Recorder::new(&stop);
    assert!(matches!(
        simulate_piece(&s, &cfg, owned, &mut recorder),
        Err(SimError::Interrupted)
    ));
    // Empty or out-of-range pieces are refused.
    for (start, end) in [(5, 5), (90, 101)] {
        let mut recorder = shard::Recorder::new(&stop);
        assert!(simulate_piece(&s, &cfg, ChainRange { start, end }, &mut recorder).is_err());
    }
}
