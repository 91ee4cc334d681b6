use super::super::{MvnConfig, MvnMethod, MvnRun, simulate};
use collapse_analysis::mvn::strategy_theory;
use collapse_analysis::{MvnSpec, Schedule, Strategy};

fn spec(schedule: &str, strategy: &str, n: u64) -> MvnSpec {
    let base = (schedule == "constant").then_some(10);
    let schedule = Schedule::parse(base, schedule).unwrap();
    MvnSpec::new(3, schedule, Some(vec![2.0, 0.5, 1.0]), n)
        .unwrap()
        .with_strategy(Strategy::parse(strategy).unwrap())
        .unwrap()
}

/// The methods a strategy runs with (accumulate-subsample needs the points).
fn methods(strategy: &str) -> Vec<MvnMethod> {
    if strategy == "accumulate-subsample" {
        vec![MvnMethod::Exact]
    } else {
        vec![MvnMethod::Exact, MvnMethod::Sufficient]
    }
}

fn run(spec: &MvnSpec, chains: u64, seed: u64, method: MvnMethod, threads: usize) -> MvnRun {
    let mut config = MvnConfig::new(chains, seed, method);
    config.threads = Some(threads);
    simulate(spec, &config).unwrap()
}

/// The ensemble means of ||mu_n - mu||^2 and tr Sigma_n against the exact theory (the projection
/// lemma of proofs/strategies.md §10) at every generation: (4 strategies x 2 methods +
/// accumulate-subsample, exact only) x 2 schedules x 8 generations x 2 quantities = 288 pairs;
/// under normality the chance that any |z| exceeds 5 is about 288 * 5.7e-7 = 1.6e-4. The theory moved by 5% must be rejected
/// somewhere for every case (the test can fail).
#[test]
fn simulation_agrees_with_theory() {
    let mut worst = 0.0f64;
    // The list has batches of 1 and 2 points (below d = 3: the sufficient method's
    // small-batch path) under mix and keep.
    for schedule in ["constant", "list:5,10,4,12,6,5,9,7"] {
        for strategy in [
            "accumulate",
            "mix:0.3",
            "keep:0.2",
            "keep:0.5",
            "accumulate-subsample",
        ] {
            let s = spec(schedule, strategy, 8);
            let theory = strategy_theory(&s, 15).unwrap();
            for method in methods(strategy) {
                let sim = run(&s, 40_000, 11, method, 2);
                let mut rejected = false;
                for (row, t) in sim.rows.iter().zip(&theory.rows).skip(1) {
                    for (summary, exact) in [
                        (row.mean_sq_error, t.mean_sq_error.to_f64()),
                        (row.trace, t.expected_trace.to_f64()),
                    ] {
                        let z = (summary.mean - exact) / summary.stderr;
                        worst = worst.max(z.abs());
                        assert!(
                            z.abs() < 5.0,
                            "{strategy} {schedule} {}: n = {}, z = {z}",
                            method.name(),
                            row.n
                        );
                        rejected |= ((summary.mean - 1.05 * exact) / summary.stderr).abs() > 5.0;
                    }
                }
                assert!(rejected, "{strategy} {schedule}: a 5% error goes unseen");
            }
        }
    }
    eprintln!("worst |z| = {worst:.2}");
}

#[test]
fn identical_for_any_thread_count() {
    for strategy in ["accumulate", "mix:0.3", "keep:0.2", "accumulate-subsample"] {
        for method in methods(strategy) {
            let s = spec("list:5,10,4,12", strategy, 4);
            let a = run(&s, 301, 5, method, 1);
            let b = run(&s, 301, 5, method, 3);
            assert_eq!(a.rows, b.rows, "{strategy} {}", method.name());
            for c in 0..301 {
                assert_eq!(a.final_chain(c), b.final_chain(c));
            }
        }
    }
}

/// Accumulate's first generation is replace's step (an empty pool): the same bits with the
/// exact method. keep:1 fits D_0 in every generation: each chain's model is the same from
/// generation 1 on.
#[test]
fn limit_cases_are_exact() {
    let replace = run(&spec("constant", "replace", 1), 200, 3, MvnMethod::Exact, 2);
    let accumulate = run(
        &spec("constant", "accumulate", 1),
        200,
        3,
        MvnMethod::Exact,
        2,
    );
    assert_eq!(replace.rows, accumulate.rows);
    for c in 0..200 {
        assert_eq!(replace.final_chain(c), accumulate.final_chain(c));
    }
    for method in [MvnMethod::Exact, MvnMethod::Sufficient] {
        let one = run(&spec("constant", "keep:1", 1), 100, 4, method, 2);
        let many = run(&spec("constant", "keep:1", 6), 100, 4, method, 2);
        for c in 0..100 {
            let (a, b) = (one.final_chain(c), many.final_chain(c));
            assert_eq!(a.mean, b.mean);
            assert_eq!(a.exponent, b.exponent);
            for (x, y) in a.factor.iter().zip(&b.factor) {
                assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} vs {y}");
            }
        }
    }
}

/// accumulate-subsample's first generation fits the M_0 real vectors themselves, which are
/// replace's (exact) first draws: the same model to rounding (a literal two-pass fit here, a
/// Welford fit in the truth's frame there). Later generations differ from replace's in law.
#[test]
fn subsample_first_generation_is_the_literal_fit() {
    let replace = run(&spec("constant", "replace", 1), 200, 3, MvnMethod::Exact, 2);
    let subsample = run(
        &spec("constant", "accumulate-subsample", 1),
        200,
        3,
        MvnMethod::Exact,
        2,
    );
    for c in 0..200 {
        let (a, b) = (replace.final_chain(c), subsample.final_chain(c));
        for (x, y) in a.mean.iter().zip(&b.mean) {
            assert!((x - y).abs() <= 1e-13, "chain {c}: mean {x} vs {y}");
        }
        let (sa, sb) = (a.covariance(), b.covariance());
        assert!((sa - &sb).amax() <= 1e-12 * sb.amax(), "chain {c}");
        assert!((a.log_det - b.log_det).abs() <= 1e-12 * a.log_det.abs().max(1.0));
    }
}

#[test]
fn accumulate_subsample_refusals_say_why() {
    let s = spec("constant", "accumulate-subsample", 3);
    let err = simulate(&s, &MvnConfig::new(10, 1, MvnMethod::Sufficient)).unwrap_err();
    assert!(err.to_string().contains("--method exact"), "{err}");
    let cap = super::max_subsample_chains(3);
    assert_eq!(cap, super::MAX_SUBSAMPLE_TRACE / 40);
    let err = simulate(&s, &MvnConfig::new(cap + 1, 1, MvnMethod::Exact)).unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    let huge = MvnSpec::new(3, Schedule::constant(1 << 20), None, 100)
        .unwrap()
        .with_strategy(Strategy::AccumulateSubsample)
        .unwrap();
    let err = simulate(&huge, &MvnConfig::new(1, 1, MvnMethod::Exact)).unwrap_err();
    assert!(err.to_string().contains("keeps every point"), "{err}");
}
