//! Theory meets simulation: every quantity, both methods, both estimators, at fixed seeds.
//!
//! Design: each check compares the ensemble mean with the exact value at every generation where
//! the mean is MC-feasible (`Feasibility`), and requires |z| < 5. Under normality one |z| > 5
//! has probability 5.7e-7; with ~400 compared pairs per test the false-alarm rate is < 3e-4
//! per seed. Each check also shows power: the same data against the theory moved by 1% must give
//! some |z| > 5, so a 1% error in a formula or a sampler cannot pass.

use collapse_analysis::gaussian::{GaussianTheory, theory};
use collapse_analysis::{Estimator, GaussianSpec, Schedule};
use collapse_sim::gaussian::{EnsembleConfig, GaussianRun, Method, simulate};
use collapse_sim::stats::ks_two_sample;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Q {
    Variance,
    Sigma,
    LogVariance,
    VarLogVariance,
    MeanSqError,
    W2Sq,
}

/// (theory, empirical, stderr, feasible) of one quantity at one generation.
fn pair(q: Q, t: &GaussianTheory, run: &GaussianRun, n: usize) -> (f64, f64, f64, bool) {
    let th = &t.rows[n];
    let e = &run.rows[n];
    let f = &th.feasibility;
    let r = run.config.chains;
    match q {
        Q::Variance => (
            th.expected_variance.to_f64(),
            e.variance.mean,
            e.variance.stderr,
            f.variance_ok(r),
        ),
        Q::Sigma => (
            th.expected_sigma.to_f64(),
            e.sigma.mean,
            e.sigma.stderr,
            f.sigma_ok(r),
        ),
        Q::LogVariance => (
            th.expected_log_variance.to_f64(),
            e.log_variance.mean,
            e.log_variance.stderr,
            true,
        ),
        Q::VarLogVariance => (
            th.var_log_variance.to_f64(),
            e.log_variance.variance,
            e.log_variance.variance_stderr,
            true,
        ),
        Q::MeanSqError => (
            th.mean_sq_error.to_f64(),
            e.mean_sq_error.mean,
            e.mean_sq_error.stderr,
            f.mean_sq_error_ok(r),
        ),
        Q::W2Sq => (
            th.expected_w2_sq.to_f64(),
            e.w2_sq.mean,
            e.w2_sq.stderr,
            f.w2_sq_ok(r),
        ),
    }
}

/// Largest |z| against the theory and against the theory scaled by 1.01, over feasible n >= 1.
fn max_z(q: Q, t: &GaussianTheory, run: &GaussianRun) -> (f64, f64, usize) {
    let (mut worst, mut power, mut compared) = (0.0f64, 0.0f64, 0);
    for n in 1..t.rows.len() {
        let (th, emp, se, feasible) = pair(q, t, run, n);
        if !feasible || se <= 0.0 {
            continue;
        }
        compared += 1;
        worst = worst.max(((emp - th) / se).abs());
        power = power.max(((emp - 1.01 * th) / se).abs());
    }
    (worst, power, compared)
}

fn spec(m: u64, est: Estimator, n: u64) -> GaussianSpec {
    GaussianSpec::new(Schedule::constant(m), est, 1.0, n).unwrap()
}

/// Runs the ensemble and checks the listed quantities (with power for `powered`).
fn check(spec: &GaussianSpec, method: Method, chains: u64, seed: u64, all: &[Q], powered: &[Q]) {
    let t = theory(spec, 17).unwrap();
    let run = simulate(spec, &EnsembleConfig::new(chains, seed, method)).unwrap();
    for &q in all {
        let (worst, power, compared) = max_z(q, &t, &run);
        assert!(compared > 0, "{q:?}: nothing feasible to compare");
        assert!(
            worst < 5.0,
            "{q:?} {method:?} {:?} M={}: |z| = {worst}",
            spec.estimator,
            spec.schedule.base
        );
        if powered.contains(&q) {
            assert!(
                power > 5.0,
                "{q:?} {method:?}: a 1% error would pass (max |z| {power})"
            );
        }
    }
}

const MOMENTS: [Q; 4] = [Q::Variance, Q::Sigma, Q::MeanSqError, Q::W2Sq];
const LOGS: [Q; 2] = [Q::LogVariance, Q::VarLogVariance];
const ALL: [Q; 6] = [
    Q::Variance,
    Q::Sigma,
    Q::LogVariance,
    Q::VarLogVariance,
    Q::MeanSqError,
    Q::W2Sq,
];

/// Moments at n <= 20 with M = 100 (relative s.d. of W2^2 about 1.2: 1% is ~8 s.e. at 1e6
/// chains); log-moments at M = 5, n = 100, where E[ln sigma^2] is -27 and 1% is ~20 s.e.
fn check_both_regimes(est: Estimator, method: Method, seed: u64) {
    check(&spec(100, est, 20), method, 1_000_000, seed, &ALL, &MOMENTS);
    check(&spec(5, est, 100), method, 1_000_000, seed + 1, &ALL, &LOGS);
}

#[test]
fn sufficient_unbiased_matches_theory() {
    check_both_regimes(Estimator::Unbiased, Method::Sufficient, 101);
}

#[test]
fn sufficient_mle_matches_theory() {
    check_both_regimes(Estimator::Mle, Method::Sufficient, 201);
}

#[test]
fn exact_unbiased_matches_theory() {
    check_both_regimes(Estimator::Unbiased, Method::Exact, 301);
}

#[test]
fn exact_mle_matches_theory() {
    check_both_regimes(Estimator::Mle, Method::Exact, 401);
}

#[test]
fn schedules_match_theory() {
    for (sched, m) in [("power:1.5", 10u64), ("linear", 10), ("geometric:1.3", 4)] {
        let s = GaussianSpec::new(
            Schedule::parse(Some(m), sched).unwrap(),
            Estimator::Unbiased,
            1.0,
            15,
        )
        .unwrap();
        check(&s, Method::Sufficient, 400_000, 501, &ALL, &[]);
    }
}

/// A plausible mistake — the MLE's theory for an unbiased-estimator simulation — is caught.
#[test]
fn wrong_theory_is_rejected() {
    let truth = spec(20, Estimator::Unbiased, 30);
    let wrong = spec(20, Estimator::Mle, 30);
    let run = simulate(&truth, &EnsembleConfig::new(200_000, 7, Method::Sufficient)).unwrap();
    let t = theory(&wrong, 17).unwrap();
    let (worst, _, _) = max_z(Q::LogVariance, &t, &run);
    assert!(worst > 5.0, "wrong theory passed with |z| = {worst}");
}

/// Two-sample Kolmogorov–Smirnov on the final mu_N - mu and ln sigma_N^2 of both methods:
/// with 2e5 chains each, sqrt(n/2) D < 2.69 at a false-alarm rate of 1e-6.
#[test]
fn exact_and_sufficient_agree_in_distribution() {
    for est in [Estimator::Unbiased, Estimator::Mle] {
        let s = spec(10, est, 8);
        let r = 200_000u64;
        let a = simulate(&s, &EnsembleConfig::new(r, 11, Method::Exact)).unwrap();
        let b = simulate(&s, &EnsembleConfig::new(r, 12, Method::Sufficient)).unwrap();
        let scale = (r as f64 / 2.0).sqrt();
        let mut la: Vec<f64> = a.final_chains.iter().map(|c| c.log_variance).collect();
        let mut lb: Vec<f64> = b.final_chains.iter().map(|c| c.log_variance).collect();
        assert!(
            ks_two_sample(&mut la, &mut lb) * scale < 2.69,
            "{est:?} log variance"
        );
        let mut ma: Vec<f64> = a.final_chains.iter().map(|c| c.mean_offset).collect();
        let mut mb: Vec<f64> = b.final_chains.iter().map(|c| c.mean_offset).collect();
        assert!(
            ks_two_sample(&mut ma, &mut mb) * scale < 2.69,
            "{est:?} mean"
        );
        // Power: the sufficient sample with ln sigma^2 shifted by 3% of its s.d. is rejected.
        let sd = (t_var(&s)).sqrt();
        let mut shifted: Vec<f64> = b
            .final_chains
            .iter()
            .map(|c| c.log_variance + 0.03 * sd)
            .collect();
        let mut la2: Vec<f64> = a.final_chains.iter().map(|c| c.log_variance).collect();
        assert!(
            ks_two_sample(&mut la2, &mut shifted) * scale > 2.69,
            "{est:?}: no power"
        );
    }
}

fn t_var(s: &GaussianSpec) -> f64 {
    theory(s, 17)
        .unwrap()
        .rows
        .last()
        .unwrap()
        .var_log_variance
        .to_f64()
}

/// 10^4 generations at M = 100 with the exact method: sigma_n^2 ~ e^-101, far below where
/// x = mu + sigma z would lose all digits; the mean of ln sigma_n^2 still follows the drift.
#[test]
fn log_drift_over_ten_thousand_generations() {
    let s = spec(100, Estimator::Unbiased, 10_000);
    let t = theory(&s, 17).unwrap();
    let run = simulate(&s, &EnsembleConfig::new(200, 3, Method::Exact)).unwrap();
    let (worst, _, compared) = max_z(Q::LogVariance, &t, &run);
    assert_eq!(compared, 10_000);
    assert!(worst < 5.0, "|z| = {worst}");
    let last = run.rows.last().unwrap();
    assert!(last.log_variance.mean < -80.0);
    assert!(
        run.final_chains
            .iter()
            .all(|c| c.log_variance.is_finite() && c.mean_offset.is_finite())
    );
    assert_eq!(last.collapsed_fraction, 1.0);
}
