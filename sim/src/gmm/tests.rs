use super::em::{Em, EmConfig};
use super::*;
use collapse_analysis::Schedule;

fn three_blobs() -> Mixture {
    let id = |s: f64| vec![vec![s, 0.0], vec![0.0, s]];
    Mixture::new(
        vec![0.2, 0.3, 0.5],
        vec![vec![-6.0, 0.0], vec![0.0, 6.0], vec![6.0, 0.0]],
        vec![id(1.0), vec![vec![0.5, 0.2], vec![0.2, 0.8]], id(1.5)],
    )
    .unwrap()
}

fn draws(mixture: &Mixture, m: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChainRng::for_chain(seed, stream::TEST, 0);
    let mut out = Vec::new();
    Model::of(mixture).sample_into(m, &mut rng, &StandardNormal::new(), &mut out);
    out
}

/// Components sorted by their first mean coordinate (labels are arbitrary).
fn sorted(m: &Mixture) -> Vec<(f64, Vec<f64>, DMatrix<f64>)> {
    let mut v: Vec<_> = (0..m.components())
        .map(|k| (m.weights[k], m.mean(k).to_vec(), m.cov(k)))
        .collect();
    v.sort_by(|a, b| a.1[0].total_cmp(&b.1[0]));
    v
}

/// A well-separated three-component mixture is recovered from 6000 draws: each weight within
/// 0.03 (5 s.e. of a proportion near 0.5 is 0.032), each mean within 0.15 and each covariance
/// entry within 0.25 (over 5 s.e. at 1200 points per component), at fixed seeds.
#[test]
fn em_recovers_a_well_separated_mixture() {
    let truth = three_blobs();
    for seed in 1..=4 {
        let x = draws(&truth, 6000, seed);
        let mut model = Model::blank(3, 2);
        let mut rng = ChainRng::for_chain(seed, stream::TEST, 1);
        let report = Em::new().fit(&x, &mut model, &EmConfig::default(), &mut rng);
        assert!(report.converged, "seed {seed}: {report:?}");
        for (t, f) in sorted(&truth).iter().zip(sorted(&model.mixture())) {
            assert!(
                (t.0 - f.0).abs() < 0.03,
                "seed {seed}: weight {} vs {}",
                t.0,
                f.0
            );
            for (a, b) in t.1.iter().zip(&f.1) {
                assert!((a - b).abs() < 0.15, "seed {seed}: mean {a} vs {b}");
            }
            assert!(
                (&t.2 - &f.2).amax() < 0.25,
                "seed {seed}: cov {} vs {}",
                t.2,
                f.2
            );
        }
    }
}

/// With no covariance floor, EM's log-likelihood never decreases (each iteration maximises a
/// minorant of it): checked step by step to rounding on overlapping mixtures, where EM takes
/// many iterations.
#[test]
fn em_likelihood_never_decreases() {
    let truth = Mixture::new(
        vec![0.5, 0.5],
        vec![vec![-0.5, 0.0], vec![0.5, 0.2]],
        vec![
            vec![vec![1.0, 0.3], vec![0.3, 1.0]],
            vec![vec![0.7, 0.0], vec![0.0, 1.3]],
        ],
    )
    .unwrap();
    let config = EmConfig {
        tol: 1e-12,
        max_iterations: 500,
        covariance_floor: 0.0,
    };
    let mut steps = 0;
    for seed in 1..=5 {
        let x = draws(&truth, 500, seed);
        let mut em = Em::new();
        em.keep_trace = true;
        let mut model = Model::blank(2, 2);
        em.fit(
            &x,
            &mut model,
            &config,
            &mut ChainRng::for_chain(seed, stream::TEST, 9),
        );
        for w in em.trace.windows(2) {
            assert!(
                w[1] >= w[0] - 1e-12 * w[0].abs(),
                "seed {seed}: {} -> {}",
                w[0],
                w[1]
            );
        }
        steps += em.trace.len();
    }
    assert!(steps > 50, "too few iterations to test anything: {steps}");
}

/// Permuting the data changes the k-means++ start but not the optimum EM converges to on
/// well-separated data: the same mixture up to labels, to 1e-6.
#[test]
fn em_is_invariant_to_permuting_the_data() {
    let truth = three_blobs();
    let x = draws(&truth, 900, 3);
    let m = x.len() / 2;
    // A fixed permutation: i -> (i * 7919) mod m (7919 is prime and does not divide 900).
    let mut permuted = vec![0.0; x.len()];
    for i in 0..m {
        let j = (i * 7919) % m;
        permuted[2 * j..2 * j + 2].copy_from_slice(&x[2 * i..2 * i + 2]);
    }
    let config = EmConfig {
        tol: 1e-12,
        ..EmConfig::default()
    };
    let fit = |data: &[f64], seed: u64| {
        let mut model = Model::blank(3, 2);
        Em::new().fit(
            data,
            &mut model,
            &config,
            &mut ChainRng::for_chain(seed, stream::TEST, 2),
        );
        model.mixture()
    };
    let (a, b) = (fit(&x, 1), fit(&permuted, 5));
    for (s, t) in sorted(&a).iter().zip(sorted(&b)) {
        assert!((s.0 - t.0).abs() < 1e-6);
        for (p, q) in s.1.iter().zip(&t.1) {
            assert!((p - q).abs() < 1e-6);
        }
        assert!((&s.2 - &t.2).amax() < 1e-6);
    }
}

/// One component without a floor is the Gaussian module's maximum-likelihood fit: the sample
/// mean and SS / M (`collapse_analysis::Estimator::Mle`), to rounding.
#[test]
fn one_component_is_the_gaussian_mle() {
    for d in [1usize, 3] {
        let x = draws(&Mixture::standard_normal(d), 257, 4);
        let config = EmConfig {
            covariance_floor: 0.0,
            ..EmConfig::default()
        };
        let mut model = Model::blank(1, d);
        let report = Em::new().fit(
            &x,
            &mut model,
            &config,
            &mut ChainRng::for_chain(1, stream::TEST, 3),
        );
        assert!(report.converged && report.iterations <= 2, "{report:?}");
        let m = 257.0;
        for j in 0..d {
            let col: Vec<f64> = x.iter().skip(j).step_by(d).copied().collect();
            let mean = col.iter().sum::<f64>() / m;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m;
            assert!((model.means[j] - mean).abs() <= 1e-14);
            assert!((model.cov(0)[(j, j)] - var).abs() <= 1e-14 * var);
        }
    }
}

/// The sampler's mean and covariance against the mixture's moments (5 s.e., 200000 draws).
#[test]
fn sampler_has_the_mixture_moments() {
    let truth = three_blobs();
    let n = 200_000;
    let x = draws(&truth, n, 7);
    let (mean, cov) = truth.moments();
    for j in 0..2 {
        let col: Vec<f64> = x.iter().skip(j).step_by(2).copied().collect();
        let m = col.iter().sum::<f64>() / n as f64;
        let v = col.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n as f64;
        let se_mean = (cov[(j, j)] / n as f64).sqrt();
        assert!((m - mean[j]).abs() < 5.0 * se_mean, "{m} vs {}", mean[j]);
        // Var of the sample variance <= E[(x - m)^4] / n; the fourth moment here is below
        // 3 (var + 40)^2 (every component's mean is within 6 of the centre).
        let se_var = (3.0 * (cov[(j, j)] + 40.0).powi(2) / n as f64).sqrt();
        assert!(
            (v - cov[(j, j)]).abs() < 5.0 * se_var,
            "{v} vs {}",
            cov[(j, j)]
        );
    }
}

fn small_spec(strategy: Strategy) -> GmmSpec {
    GmmSpec::new(2, Schedule::constant(60), 6, Mixture::standard_normal(2))
        .unwrap()
        .with_strategy(strategy)
        .unwrap()
}

#[test]
fn identical_for_any_thread_count() {
    for strategy in [
        Strategy::Replace,
        Strategy::Mix(0.3),
        Strategy::Keep(0.2),
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
    ] {
        let spec = small_spec(strategy);
        let run = |threads| {
            let mut config = GmmConfig::new(37, 9);
            config.heldout = 200;
            config.threads = Some(threads);
            simulate(&spec, &config).unwrap()
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.rows, b.rows, "{strategy:?}");
        assert_eq!(a.chain0, b.chain0);
    }
}

/// Generation 0 is the truth: L2 = 0 and MW2 = 0, the held-out log-likelihood is the truth's
/// (for N(0, I_2): -ln(2 pi) - E||x||^2 / 2, about -2.84), and later generations move away.
#[test]
fn generation_zero_is_the_truth_and_fits_move_away() {
    let mut config = GmmConfig::new(64, 3);
    config.heldout = 20_000;
    let run = simulate(&small_spec(Strategy::Replace), &config).unwrap();
    let g0 = &run.rows[0];
    assert_eq!(g0.l2_sq.mean, 0.0);
    assert_eq!(g0.distance.mean, 0.0);
    let expected = -(2.0 * std::f64::consts::PI).ln() - 1.0;
    assert!(
        (g0.heldout_loglik.mean - expected).abs() < 0.03,
        "{}",
        g0.heldout_loglik.mean
    );
    for row in &run.rows[1..] {
        assert!(row.l2_sq.mean > 0.0 && row.distance.mean > 0.0);
        // A fitted model scores the truth's sample worse than the truth does, on average.
        assert!(row.heldout_loglik.mean < g0.heldout_loglik.mean);
        assert!(row.em_iterations.mean >= 1.0);
    }
    assert_eq!(run.chain0.len(), 7);
    assert_eq!(run.chain0[0], Mixture::standard_normal(2));
}

#[test]
fn bad_settings_are_refused() {
    let spec = small_spec(Strategy::Replace);
    let mut config = GmmConfig::new(4, 1);
    config.heldout = 0;
    assert!(
        simulate(&spec, &config)
            .unwrap_err()
            .to_string()
            .contains("heldout")
    );
    let mut config = GmmConfig::new(4, 1);
    config.em.tol = f64::NAN;
    assert!(simulate(&spec, &config).is_err());
    assert!(simulate(&spec, &GmmConfig::new(0, 1)).is_err());
}

/// MW2^2 is zero between a mixture and itself with its components in another order, symmetric,
/// Gelbrich's W2^2 between single Gaussians, and at least the squared distance between the means
/// (W2^2 >= ||E x - E y||^2, and MW2 >= W2).
#[test]
fn mixture_w2_is_a_coupling_cost() {
    let a = three_blobs();
    let mut swapped = a.clone();
    let d = a.dim;
    swapped.weights.reverse();
    let mut means = Vec::new();
    let mut covs = Vec::new();
    for k in (0..a.components()).rev() {
        means.extend_from_slice(a.mean(k));
        covs.extend_from_slice(&a.covs[k * d * d..(k + 1) * d * d]);
    }
    swapped.means = means;
    swapped.covs = covs;
    assert!(mixture_w2_sq(&a, &swapped).abs() < 1e-12);
    let b = Mixture::standard_normal(2);
    let (ab, ba) = (mixture_w2_sq(&a, &b), mixture_w2_sq(&b, &a));
    assert!((ab - ba).abs() <= 1e-12 * ab);
    let (ma, _) = a.moments();
    let mean_gap: f64 = ma.iter().map(|x| x * x).sum();
    assert!(ab >= mean_gap);
    let c = Mixture::new(
        vec![0.4, 0.6],
        vec![vec![1.0, 1.0], vec![-3.0, 0.5]],
        vec![
            vec![vec![0.3, 0.0], vec![0.0, 2.0]],
            vec![vec![1.0, 0.4], vec![0.4, 0.6]],
        ],
    )
    .unwrap();
    assert!(mixture_w2_sq(&a, &c) > 0.0 && mixture_w2_sq(&a, &c).is_finite());
    let one = a.moment_matched();
    let gelbrich = crate::mvn::w2_sq(
        &DVector::from_column_slice(one.mean(0)),
        &one.cov(0),
        &DVector::zeros(2),
        &DMatrix::identity(2, 2),
    )
    .unwrap();
    assert!((mixture_w2_sq(&one, &b) - gelbrich).abs() <= 1e-12 * gelbrich);
}

/// One component in one dimension without a floor is the `gaussian` process with the MLE
/// estimator (proofs/gmm.md, claim gmm.2.1): the ensemble means of sigma_n^2 (the only
/// eigenvalue) and of W2^2 = MW2^2 against `collapse_analysis::gaussian`'s exact theory at every
/// generation, 2 x 8 pairs at 20000 chains; under normality the chance that any |z| exceeds 5
/// is about 16 * 5.7e-7 = 1e-5. The theory moved by 5% is rejected (the test can fail).
#[test]
fn one_component_ensemble_matches_the_gaussian_theory() {
    use collapse_analysis::gaussian::theory_at_precision;
    use collapse_analysis::{Estimator, GaussianSpec};
    let (m, n) = (20, 8);
    let gaussian = GaussianSpec::new(Schedule::constant(m), Estimator::Mle, 1.0, n).unwrap();
    let theory = theory_at_precision(&gaussian, 128);
    let spec = GmmSpec::new(1, Schedule::constant(m), n, Mixture::standard_normal(1)).unwrap();
    let mut config = GmmConfig::new(20_000, 5);
    config.heldout = 10;
    config.em.covariance_floor = 0.0;
    let run = simulate(&spec, &config).unwrap();
    let mut rejected = false;
    for (row, t) in run.rows.iter().zip(&theory.rows).skip(1) {
        assert_eq!(row.n, t.n);
        for (s, exact) in [
            (row.max_eigenvalue, t.expected_variance.to_f64()),
            (row.distance, t.expected_w2_sq.to_f64()),
        ] {
            let z = (s.mean - exact) / s.stderr;
            assert!(
                z.abs() < 5.0,
                "n = {}: {} vs {exact} (z = {z})",
                row.n,
                s.mean
            );
            rejected |= ((s.mean - 1.05 * exact) / s.stderr).abs() > 5.0;
        }
    }
    assert!(rejected, "a 5% error goes unseen");
}

/// One component in one dimension without a floor under every data strategy is the `gaussian`
/// process with that strategy and the MLE estimator: the ensemble mean of sigma_n^2 against
/// `collapse_analysis::strategy`'s exact theory at every generation (4 strategies x 6
/// generations = 24 pairs at 20000 chains; false-alarm rate about 24 * 5.7e-7 = 1.4e-5), and
/// the theory moved by 5% is rejected for each strategy. Accumulate's and accumulate-subsample's
/// first fit is replace's to the bit (the same M_0 draws, the same k-means stream).
#[test]
fn one_component_strategies_match_the_gaussian_theory() {
    use collapse_analysis::strategy::strategy_theory_at_precision;
    use collapse_analysis::{Estimator, GaussianSpec};
    let (m, n) = (12, 6);
    let mut config = GmmConfig::new(20_000, 8);
    config.heldout = 10;
    config.em.covariance_floor = 0.0;
    let gmm = |strategy: Strategy, generations: u64| {
        let spec = GmmSpec::new(
            1,
            Schedule::constant(m),
            generations,
            Mixture::standard_normal(1),
        )
        .unwrap()
        .with_strategy(strategy)
        .unwrap();
        simulate(&spec, &config).unwrap()
    };
    for strategy in [
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
        Strategy::Mix(0.3),
        Strategy::Keep(0.25),
    ] {
        let gaussian = GaussianSpec::new(Schedule::constant(m), Estimator::Mle, 1.0, n)
            .unwrap()
            .with_strategy(strategy)
            .unwrap();
        let theory = strategy_theory_at_precision(&gaussian, 128);
        let run = gmm(strategy, n);
        let mut rejected = false;
        for (row, t) in run.rows.iter().zip(&theory.rows).skip(1) {
            assert_eq!(row.n, t.n);
            let exact = t.expected_variance.to_f64();
            let s = row.max_eigenvalue;
            let z = (s.mean - exact) / s.stderr;
            assert!(
                z.abs() < 5.0,
                "{strategy:?} n = {}: {} vs {exact} (z = {z})",
                row.n,
                s.mean
            );
            rejected |= ((s.mean - 1.05 * exact) / s.stderr).abs() > 5.0;
        }
        assert!(rejected, "{strategy:?}: a 5% error goes unseen");
    }
    let mut small = config.clone();
    small.chains = 50;
    let first = |strategy| {
        let spec = small_spec(strategy);
        let spec = GmmSpec {
            generations: 1,
            ..spec
        };
        simulate(&spec, &small).unwrap()
    };
    let replace = first(Strategy::Replace);
    for strategy in [Strategy::Accumulate, Strategy::AccumulateSubsample] {
        let run = first(strategy);
        assert_eq!(run.rows, replace.rows, "{strategy:?}");
        assert_eq!(run.chain0, replace.chain0, "{strategy:?}");
    }
}

/// Every strategy, split into pieces whose boundaries fall inside blocks (one of them a single
/// chain), merges to the bits of the whole run: the rows and chain 0's mixtures. The pieces are
/// merged from a shuffled list, and only the piece that owns chain 0 has end words.
#[test]
fn pieces_merge_to_the_bits_of_the_whole_run() {
    use crate::shard::{self, RunHeader};
    use std::sync::atomic::AtomicBool;
    let chunk = CHUNK as u64;
    let chains = 2 * chunk + 5;
    // [chunk + 3, chunk + 4) is a one-chain piece; every other cut but the ends is mid-block.
    let cuts = [0, 5, chunk + 3, chunk + 4, 2 * chunk + 2, chains];
    for strategy in [
        Strategy::Replace,
        Strategy::Mix(0.3),
        Strategy::Keep(0.2),
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
    ] {
        let spec = GmmSpec::new(2, Schedule::constant(60), 5, Mixture::standard_normal(2))
            .unwrap()
            .with_strategy(strategy)
            .unwrap();
        let mut cfg = GmmConfig::new(chains, 21);
        cfg.heldout = 100;
        let whole = simulate(&spec, &cfg).unwrap();
        let header = RunHeader {
            version: "test".into(),
            process: "gmm".into(),
            identity: format!("{strategy:?}"),
            chains,
            generations: spec.generations,
            layout: LAYOUT,
        };
        let mut records: Vec<_> = cuts
            .windows(2)
            .map(|w| {
                let owned = ChainRange {
                    start: w[0],
                    end: w[1],
                };
                shard::run_piece(&header, owned, &AtomicBool::new(false), &mut |o, s| {
                    simulate_piece(&spec, &cfg, o, s)
                })
                .unwrap()
            })
            .collect();
        // A fixed shuffle: check_set must put the pieces back in chain order.
        records.swap(0, 3);
        records.swap(1, 4);
        records.swap(2, 3);
        let records = shard::check_set(records).unwrap();
        assert!(records[1..].iter().all(|r| r.ends.is_empty()));
        let merged = shard::merge(&records, Assembler::new(&spec, &cfg)).unwrap();
        assert_eq!(
            format!("{:?}", merged.rows),
            format!("{:?}", whole.rows),
            "{strategy:?}"
        );
        assert_eq!(
            format!("{:?}", merged.chain0),
            format!("{:?}", whole.chain0),
            "{strategy:?}"
        );
        assert_eq!(merged.chain0.len(), spec.generations as usize + 1);
    }
}

/// A stop request ends a piece at the next generation boundary with `Interrupted` (after
/// generation 0 was emitted); a piece outside the ensemble is refused.
#[test]
fn a_stopped_piece_is_interrupted() {
    struct Stopped(Vec<u64>);
    impl PieceSink for Stopped {
        fn generation(&mut self, n: u64, _: &[u64], _: &[&[f64]]) {
            self.0.push(n);
        }
        fn stopped(&self) -> bool {
            true
        }
    }
    let spec = small_spec(Strategy::Replace);
    let mut cfg = GmmConfig::new(20, 4);
    cfg.heldout = 50;
    let owned = ChainRange { start: 3, end: 9 };
    let mut sink = Stopped(Vec::new());
    assert_eq!(
        simulate_piece(&spec, &cfg, owned, &mut sink),
        Err(SimError::Interrupted)
    );
    assert_eq!(sink.0, [0]);
    let outside = ChainRange { start: 15, end: 21 };
    assert!(matches!(
        simulate_piece(&spec, &cfg, outside, &mut Stopped(Vec::new())),
        Err(SimError::Invalid { what: "shard", .. })
    ));
}
