use super::*;
use crate::Schedule;
use rug::Float;

fn spec(schedule: &str, m: Option<u64>, est: Estimator, sigma: f64, n: u64) -> GaussianSpec {
    GaussianSpec::new(Schedule::parse(m, schedule).unwrap(), est, sigma, n).unwrap()
}

fn with(s: &GaussianSpec, strategy: Strategy) -> GaussianSpec {
    s.clone().with_strategy(strategy).unwrap()
}

fn q(num: i64, den: i64) -> Rational {
    Rational::from((num, den))
}

const ESTIMATORS: [Estimator; 2] = [Estimator::Unbiased, Estimator::Mle];

#[test]
fn parse_label_and_bad_input() {
    for text in [
        "replace",
        "accumulate",
        "accumulate-subsample",
        "mix:0.1",
        "mix:0",
        "mix:1",
        "keep:0.25",
    ] {
        let s = Strategy::parse(text).unwrap();
        assert_eq!(s.label(), text);
        assert_eq!(Strategy::parse(&s.label()).unwrap(), s);
    }
    assert_eq!(Strategy::parse("mix:-0").unwrap(), Strategy::Mix(0.0));
    assert_eq!(Strategy::parse("keep:1e-1").unwrap(), Strategy::Keep(0.1));
    for bad in [
        "mix:",
        "mix",
        "keep:abc",
        "mix:NaN",
        "mix:nan",
        "mix:inf",
        "keep:-inf",
        "mix:1.5",
        "keep:-0.1",
        "mix:0.5:1",
        "replace:1",
        "accumulate:0.5",
        "subsample",
        "",
        "MIX:0.1",
    ] {
        let e = Strategy::parse(bad).unwrap_err().to_string();
        assert!(e.starts_with("invalid strategy: "), "{bad}: {e}");
        assert_eq!(e.lines().count(), 1, "{bad}: {e}");
    }
    assert_eq!(Strategy::default(), Strategy::Replace);
    // round(F M): half away from zero in double precision, never above M.
    assert_eq!(round_fraction(0.25, 10), 3);
    assert_eq!(round_fraction(0.24, 10), 2);
    assert_eq!(round_fraction(1.0, 7), 7);
    assert_eq!(round_fraction(0.0, 7), 0);
}

#[test]
fn keep_is_validated_against_the_sizes() {
    let s = spec("list:10,6,8", None, Estimator::Unbiased, 1.0, 3);
    assert!(s.clone().with_strategy(Strategy::Keep(0.6)).is_ok());
    let e = s.clone().with_strategy(Strategy::Keep(0.7)).unwrap_err();
    assert!(e.to_string().contains("M_1 = 6 < 7"), "{e}");
    for ok in [
        Strategy::Replace,
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
        Strategy::Mix(1.0),
        Strategy::Keep(0.0),
    ] {
        assert_eq!(s.clone().with_strategy(ok).unwrap().strategy, ok);
    }
    // The default is replace, and `new` keeps its signature.
    assert_eq!(s.strategy, Strategy::Replace);
}

/// strategies.2.1: replace is the gaussian theory, ball for ball.
#[test]
fn replace_equals_the_gaussian_theory_exactly() {
    for est in ESTIMATORS {
        for (schedule, m) in [("constant", Some(10)), ("power:1.5", Some(3))] {
            let s = spec(schedule, m, est, 1.3, 40);
            let g = crate::gaussian::theory(&s, 25).unwrap();
            let t = strategy_theory(&s, 25).unwrap();
            assert_eq!(t.rows.len(), g.rows.len());
            assert_eq!(t.precision_bits, g.precision_bits);
            for (a, b) in t.rows.iter().zip(&g.rows) {
                assert_eq!(a.mean_sq_error.mid(), b.mean_sq_error.mid());
                assert_eq!(a.mean_sq_error.rad(), b.mean_sq_error.rad());
                assert_eq!(a.expected_variance.mid(), b.expected_variance.mid());
                assert_eq!(a.expected_variance.rad(), b.expected_variance.rad());
                assert_eq!(a.w2_sq_lower_bound.mid(), b.w2_sq_lower_bound.mid());
            }
            // The generic recursion reproduces the gaussian module's balls bit for bit.
            for prec in [64, 200] {
                let g = crate::gaussian::theory_at_precision(&s, prec);
                let r = strategy_theory_at_precision(&s, prec);
                for (a, b) in r.rows.iter().zip(&g.rows) {
                    assert_eq!(a.mean_sq_error.mid(), b.mean_sq_error.mid());
                    assert_eq!(a.mean_sq_error.rad(), b.mean_sq_error.rad());
                    assert_eq!(a.expected_variance.mid(), b.expected_variance.mid());
                    assert_eq!(a.expected_variance.rad(), b.expected_variance.rad());
                }
            }
        }
    }
}

/// A brute-force second route: every point ever drawn is kept with the exact second moments
/// E[x_p x_q] of all pairs (mu = 0), and each strategy's training sets are built literally from
/// the definitions of proofs/strategies.md §1. A model fitted to a uniform t-subset of a pool of
/// n points (t = n: the whole pool) has mean sum_p w_p x_p with E[w_p] = 1/n,
/// E[w_p^2] = 1/(t n), E[w_p w_q] = (t-1)/(t n (n-1)); a point drawn from it is mu + sigma z.
struct World {
    /// E[x_p x_q] for all points so far.
    gram: Vec<Vec<Rational>>,
    /// The model each point was drawn from (0: the truth).
    source: Vec<usize>,
    estimator: Estimator,
}

#[derive(Clone)]
struct Model {
    id: usize,
    /// E[(mu - mu_true)^2], E[sigma^2].
    e: Rational,
    v: Rational,
    /// E[mu x_p] for the points that existed when the model was fitted.
    cross: Vec<Rational>,
}

impl World {
    fn draw(&mut self, model: &Model, count: u64) -> Vec<usize> {
        let mut drawn = Vec::new();
        for _ in 0..count {
            let index = self.gram.len();
            let row: Vec<Rational> = (0..index)
                .map(|r| {
                    if r < model.cross.len() {
                        model.cross[r].clone()
                    } else if self.source[r] == model.id {
                        model.e.clone()
                    } else {
                        Rational::new()
                    }
                })
                .collect();
            for (r, x) in row.iter().enumerate() {
                self.gram[r].push(x.clone());
            }
            let mut row = row;
            row.push(Rational::from(&model.e + &model.v));
            self.gram.push(row);
            self.source.push(model.id);
            drawn.push(index);
        }
        drawn
    }

    /// The model fitted to a uniform `t`-subset of `pool`.
    fn fit(&self, id: usize, pool: &[usize], t: u64) -> Model {
        let n = pool.len() as u64;
        let diag: Rational = pool.iter().map(|&p| self.gram[p][p].clone()).sum();
        let mut off = Rational::new();
        for &p in pool {
            for &r in pool {
                if p != r {
                    off += &self.gram[p][r];
                }
            }
        }
        let pi1 = q(t as i64, n as i64);
        let pi2 = if n > 1 {
            q((t * (t - 1)) as i64, (n * (n - 1)) as i64)
        } else {
            Rational::new()
        };
        let tt = Rational::from((t * t, 1u64));
        let e = (Rational::from(&pi1 * &diag) + pi2 * off) / &tt;
        let ss = Rational::from(&pi1 * &diag) - Rational::from(&e * t);
        let v = ss / Rational::from((self.estimator.divisor(t), 1u64));
        let cross = (0..self.gram.len())
            .map(|r| {
                pool.iter()
                    .map(|&p| self.gram[p][r].clone())
                    .sum::<Rational>()
                    / n
            })
            .collect();
        Model { id, e, v, cross }
    }
}

fn brute_force(spec: &GaussianSpec) -> Vec<(Rational, Rational)> {
    let sizes = spec.sample_sizes();
    let s2 = Exact.sigma2(spec.sigma);
    let truth = Model {
        id: 0,
        e: Rational::new(),
        v: s2.clone(),
        cross: Vec::new(),
    };
    let mut world = World {
        gram: Vec::new(),
        source: Vec::new(),
        estimator: spec.estimator,
    };
    let d0 = world.draw(&truth, sizes[0]);
    let mut model = world.fit(1, &d0, sizes[0]);
    let mut rows = vec![(Rational::new(), s2), (model.e.clone(), model.v.clone())];
    let mut all = d0.clone();
    for (i, &m) in sizes.iter().enumerate().skip(1) {
        let id = i + 1;
        let next = match spec.strategy {
            Strategy::Replace => {
                let s = world.draw(&model, m);
                world.fit(id, &s, m)
            }
            Strategy::Accumulate => {
                all.extend(world.draw(&model, m));
                world.fit(id, &all, all.len() as u64)
            }
            Strategy::AccumulateSubsample => {
                all.extend(world.draw(&model, m));
                world.fit(id, &all, m)
            }
            Strategy::Mix(f) => {
                let r = round_fraction(f, m);
                let mut t = world.draw(&truth, r);
                t.extend(world.draw(&model, m - r));
                world.fit(id, &t, m)
            }
            Strategy::Keep(f) => {
                let k = round_fraction(f, sizes[0]) as usize;
                let mut t = d0[..k].to_vec();
                t.extend(world.draw(&model, m - k as u64));
                world.fit(id, &t, m)
            }
        };
        model = next;
        rows.push((model.e.clone(), model.v.clone()));
    }
    rows
}

/// strategies.3.1, 3.2, 4.1, 5.1, 6.1: every closed form equals the point-level second moments.
#[test]
fn closed_forms_match_point_level_second_moments() {
    let strategies = [
        Strategy::Replace,
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
        Strategy::Mix(0.5),
        Strategy::Mix(0.34),
        Strategy::Mix(1.0),
        Strategy::Keep(0.34),
        Strategy::Keep(0.67),
        Strategy::Keep(1.0),
    ];
    let mut compared = 0;
    for est in ESTIMATORS {
        for (schedule, m, n) in [
            ("constant", Some(3), 6),
            ("list:3,5,2,4,3", None, 6),
            ("constant", Some(4), 4),
        ] {
            let base = spec(schedule, m, est, 1.5, n);
            for strategy in strategies {
                let Ok(s) = base.clone().with_strategy(strategy) else {
                    // keep:1 on the list (K = 3 > M_2 = 2) is refused, as it must be.
                    assert!(matches!(strategy, Strategy::Keep(_)) && schedule.starts_with("list"));
                    continue;
                };
                let closed = exact_moments(&s);
                let brute = brute_force(&s);
                assert_eq!(closed.len(), brute.len());
                for (i, (c, b)) in closed.iter().zip(&brute).enumerate() {
                    assert_eq!(c, b, "{strategy:?} {est:?} {schedule} n = {i}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 300);
}

/// strategies.3.1, 3.2: the direct accumulate recursion, the pool route with t_i = N_i, and the
/// stated special forms agree exactly.
#[test]
fn accumulate_two_derivations_agree() {
    for est in ESTIMATORS {
        for (schedule, m) in [
            ("constant", Some(5)),
            ("linear", Some(2)),
            ("list:4,9,2", None),
        ] {
            let s = with(&spec(schedule, m, est, 0.7, 30), Strategy::Accumulate);
            let direct = exact_moments(&s);
            let pool = pool_moments(&Exact, &s.sample_sizes(), est, Exact.sigma2(0.7), false);
            assert_eq!(direct, pool, "{schedule} {est:?}");
            // e_{i+1} = e_i + M_i v_i / N_i^2; for i >= 1, v_{i+1} = v_i (1 - M_i / (N_i (N_i - 1)))
            // (unbiased) or v_i (1 - M_i / N_i^2) (MLE).
            let sizes = s.sample_sizes();
            let mut n_i = 0i64;
            for (i, &m) in sizes.iter().enumerate() {
                let m = m as i64;
                n_i += m;
                let (e, v) = &direct[i];
                let (e1, v1) = &direct[i + 1];
                assert_eq!(*e1, e + v * q(m, n_i * n_i));
                let factor = if i == 0 {
                    q(m - 1, est.divisor(m as u64) as i64)
                } else {
                    match est {
                        Estimator::Unbiased => 1 - q(m, n_i * (n_i - 1)),
                        Estimator::Mle => 1 - q(m, n_i * n_i),
                    }
                };
                assert_eq!(*v1, Rational::from(v * &factor));
            }
        }
    }
}

/// strategies.3.3: accumulate keeps E[(mu_n - mu)^2] <= 2 sigma^2 / M_0 for every schedule
/// (<= sigma^2 pi^2 / (6 M) for a constant one) and E[sigma_n^2] decreasing to a positive limit.
#[test]
fn accumulate_is_bounded() {
    for est in ESTIMATORS {
        for (schedule, m) in [("constant", Some(4)), ("list:2,50,2,2,100,3", None)] {
            let s = with(&spec(schedule, m, est, 2.0, 3000), Strategy::Accumulate);
            let t = strategy_theory(&s, 20).unwrap();
            assert!(!t.exact);
            let m0 = s.schedule.base as f64;
            let pi2_6 = std::f64::consts::PI.powi(2) / 6.0;
            let mut last_v = f64::INFINITY;
            for row in &t.rows {
                let e = row.mean_sq_error.to_f64();
                let v = row.expected_variance.to_f64();
                assert!(e <= 2.0 * 4.0 / m0, "{schedule} n = {}: {e}", row.n);
                if schedule == "constant" {
                    assert!(e <= 4.0 * pi2_6 / m0 + 1e-12);
                }
                assert!(v <= last_v + 1e-15 && v > 0.0);
                last_v = v;
            }
            if schedule == "constant" && est == Estimator::Unbiased {
                // v_{n+1} = 4 prod_{j=2}^{n} (1 - 1/(j (4j - 1))) (j = i + 1): the factors' sum
                // of 1 - factor beyond j = 1000 is below 1/(4 * 999), so the product has
                // settled to that accuracy, at a positive limit.
                let v = |n: usize| t.rows[n].expected_variance.to_f64();
                assert!((v(1000) - v(3000)).abs() <= 4.0 / (4.0 * 999.0));
                assert!(v(3000) > 2.0, "{}", v(3000));
            }
            assert_eq!(t.bounded, Some(true));
        }
    }
}

/// strategies.4.2, 4.3: accumulate-subsample (unbiased, constant M): the pool variance grows by
/// the factor 1 + (N_i - 2M)/(N_{i+1}(N_{i+1} - 1)) each generation, so E[sigma_n^2] grows like
/// n^(1/M) (unbounded), and E[(mu_n - mu)^2] grows with it.
#[test]
fn subsample_variance_grows_like_a_power() {
    let m = 4u64;
    let s = with(
        &spec("constant", Some(m), Estimator::Unbiased, 1.0, 40),
        Strategy::AccumulateSubsample,
    );
    let exact = exact_moments(&s);
    // E[sigma_{i+1}^2] = V_i, so v_{i+2} / v_{i+1} is the growth factor of V with N_i = M(i+1).
    for i in 0..38u64 {
        let n_i = (m * (i + 1)) as i64;
        let n_next = n_i + m as i64;
        let factor = 1 + q(n_i - 2 * m as i64, n_next * (n_next - 1));
        let ratio = Rational::from(&exact[i as usize + 2].1 / &exact[i as usize + 1].1);
        assert_eq!(ratio, factor, "i = {i}");
    }
    // The growth is n^(1/M): v_n / n^(1/M) settles (O(1/n) drift).
    let long = with(
        &spec("constant", Some(m), Estimator::Unbiased, 1.0, 100_000),
        Strategy::AccumulateSubsample,
    );
    let t = strategy_theory_at_precision(&long, 128);
    let scaled = |n: usize| t.rows[n].expected_variance.to_f64() / (n as f64).powf(0.25);
    let (a, b) = (scaled(10_000), scaled(100_000));
    assert!((a / b - 1.0).abs() < 1e-3, "{a} {b}");
    assert!(t.rows[100_000].expected_variance.to_f64() > 9.0);
    assert!(t.rows[100_000].mean_sq_error.to_f64() > t.rows[10_000].mean_sq_error.to_f64());
    assert_eq!(t.bounded, Some(false));
}

/// strategies.5.2: mix:0 (and any F with round(F M) = 0) is replace; mix:1 trains on fresh real
/// data every generation: E[(mu_n - mu)^2] = sigma^2 / M_{n-1}, E[sigma_n^2] = sigma^2 (M-1)/D.
#[test]
fn mix_limit_cases() {
    for est in ESTIMATORS {
        for (schedule, m) in [("constant", Some(10)), ("linear", Some(3))] {
            let base = spec(schedule, m, est, 1.25, 25);
            let replace = exact_moments(&base);
            assert_eq!(exact_moments(&with(&base, Strategy::Mix(0.0))), replace);
            if schedule == "constant" {
                // round(0.04 * 10) = 0.
                assert_eq!(exact_moments(&with(&base, Strategy::Mix(0.04))), replace);
            }
            let fresh = exact_moments(&with(&base, Strategy::Mix(1.0)));
            let s2 = Exact.sigma2(1.25);
            for (n, (e, v)) in fresh.iter().enumerate().skip(1) {
                let m = base.sample_sizes()[n - 1];
                assert_eq!(*e, Rational::from(&s2 / m));
                assert_eq!(*v, &s2 * q(m as i64 - 1, est.divisor(m) as i64));
            }
        }
    }
}

/// strategies.6.2: keep with K = 0 is replace; keep:1 with a constant schedule trains on D_0
/// every generation: E[(mu_n - mu)^2] = sigma^2 / M and E[sigma_n^2] = sigma^2 (M-1)/D; the two
/// derivations of keep (through w_i and through c_i) agree exactly.
#[test]
fn keep_limit_cases_and_two_derivations() {
    let s2 = Exact.sigma2(0.9);
    for est in ESTIMATORS {
        for (schedule, m) in [
            ("constant", Some(8)),
            ("linear", Some(4)),
            ("list:6,9,7", None),
        ] {
            let base = spec(schedule, m, est, 0.9, 30);
            let replace = exact_moments(&base);
            assert_eq!(exact_moments(&with(&base, Strategy::Keep(0.0))), replace);
            assert_eq!(exact_moments(&with(&base, Strategy::Keep(0.05))), replace);
            for f in [0.05, 0.2, 0.5, 0.9, 1.0] {
                let s = with(&base, Strategy::Keep(f));
                let by_c =
                    keep_moments_by_correlation(&Exact, &s.sample_sizes(), est, s2.clone(), f);
                assert_eq!(exact_moments(&s), by_c, "{schedule} keep:{f} {est:?}");
            }
        }
        let s = with(
            &spec("constant", Some(8), est, 0.9, 20),
            Strategy::Keep(1.0),
        );
        for (e, v) in exact_moments(&s).iter().skip(1) {
            assert_eq!(*e, Rational::from(&s2 / 8u32));
            assert_eq!(*v, &s2 * q(7, est.divisor(8) as i64));
        }
    }
}

/// One step of mix / keep (the (e, v, c) form) from an arbitrary state, written out again from
/// proofs/strategies.md §5 and §6.
fn mix_step(
    e: &Rational,
    v: &Rational,
    s2: &Rational,
    m: i64,
    r: i64,
    d: i64,
) -> (Rational, Rational) {
    let s = m - r;
    let e1 =
        (Rational::from(e * (s * s)) + Rational::from(s2 * r) + Rational::from(v * s)) / (m * m);
    let ss = s2 * q((r - 1) * m + s, m) + v * q((s - 1) * m + r, m) + e * q(r * s, m);
    (e1, ss / d)
}

fn keep_step(
    (e, v, c): (&Rational, &Rational, &Rational),
    s2: &Rational,
    m: i64,
    k: i64,
    d: i64,
) -> (Rational, Rational, Rational) {
    let s = m - k;
    let e1 = (Rational::from(s2 * k)
        + Rational::from(c * (2 * k * s))
        + Rational::from(e * (s * s))
        + Rational::from(v * s))
        / (m * m);
    let c1 = (s2.clone() + Rational::from(c * s)) / m;
    let ss = s2 * q((k - 1) * m + s, m)
        + v * q((s - 1) * m + k, m)
        + (e - Rational::from(c * 2)) * q(k * s, m);
    (e1, ss / d, c1)
}

/// strategies.5.3, 6.3: the stated stationary values are fixed points of one step (exactly),
/// and the recursion converges to them (constant M).
#[test]
fn stationary_values_are_fixed_points_and_limits() {
    let s2 = Exact.sigma2(1.1);
    let mut checked = 0;
    for est in ESTIMATORS {
        for m in [2u64, 3, 10, 25] {
            let d = est.divisor(m) as i64;
            let base = spec("constant", Some(m), est, 1.1, 4000);
            for f in [0.0, 0.04, 0.1, 0.3, 0.5, 0.99, 1.0] {
                for strategy in [Strategy::Mix(f), Strategy::Keep(f)] {
                    let s = with(&base, strategy);
                    let a = round_fraction(f, m) as i64;
                    let Some((e, v)) = stationary_exact(&s) else {
                        assert_eq!(a, 0, "{strategy:?} M = {m}");
                        continue;
                    };
                    if let Strategy::Mix(_) = strategy {
                        assert_eq!(
                            mix_step(&e, &v, &s2, m as i64, a, d),
                            (e.clone(), v.clone())
                        );
                    } else {
                        let c = Rational::from(&s2 / a);
                        let next = keep_step((&e, &v, &c), &s2, m as i64, a, d);
                        assert_eq!(next, (e.clone(), v.clone(), c));
                        if a == 1 {
                            // One kept point: the variance collapses, the mean settles on it.
                            assert_eq!(v, 0);
                            assert_eq!(e, s2);
                        }
                    }
                    // Convergence: after 4000 generations the recursion sits on the fixed
                    // point (geometric rate; slowest here, (S/M)^2 = (24/25)^2 per step).
                    let t = strategy_theory_at_precision(&s, 256);
                    let last = t.rows.last().unwrap();
                    let st = t.stationary.as_ref().unwrap();
                    let close = |x: &Ball, y: &Ball| {
                        (x.to_f64() - y.to_f64()).abs() <= 1e-20 * (1.21 + y.to_f64().abs())
                    };
                    assert!(
                        close(&last.mean_sq_error, &st.mean_sq_error),
                        "{strategy:?} M = {m}"
                    );
                    assert!(
                        close(&last.expected_variance, &st.expected_variance),
                        "{strategy:?} M = {m}"
                    );
                    assert_eq!(t.bounded, Some(true));
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 76);
    // Two explicit values: mix with one real point of M = 2 (unbiased) settles at e* = sigma^2,
    // v* = 2 sigma^2; keep with K of M unbiased has v* = sigma^2 M (K-1)(2M-K) /
    // (K (M-1)(2M-K) - (M-K)^2).
    let mix = with(
        &spec("constant", Some(2), Estimator::Unbiased, 1.0, 3),
        Strategy::Mix(0.5),
    );
    assert_eq!(stationary_exact(&mix), Some((q(1, 1), q(2, 1))));
    let keep = with(
        &spec("constant", Some(10), Estimator::Unbiased, 1.0, 3),
        Strategy::Keep(0.2),
    );
    let (k, m) = (2i64, 10i64);
    let v = q(
        m * (k - 1) * (2 * m - k),
        k * (m - 1) * (2 * m - k) - (m - k) * (m - k),
    );
    assert_eq!(stationary_exact(&keep).unwrap().1, v);
}

/// strategies.9.1: the ball route encloses the exact rationals, and `strategy_theory` certifies
/// the digits asked for on both of its paths (exact rationals up to EXACT_GENERATIONS, balls
/// beyond).
#[test]
fn balls_enclose_the_exact_rationals() {
    let strategies = [
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
        Strategy::Mix(0.3),
        Strategy::Keep(0.2),
        Strategy::Keep(0.1),
    ];
    for est in ESTIMATORS {
        for (schedule, m) in [("constant", Some(10)), ("power:1.2", Some(3))] {
            for strategy in strategies {
                let s = with(&spec(schedule, m, est, 1.7, 120), strategy);
                let exact = exact_moments(&s);
                let balls = strategy_theory_at_precision(&s, 160);
                for (row, (e, v)) in balls.rows.iter().zip(&exact) {
                    assert!(
                        row.mean_sq_error.contains_rational(e),
                        "{strategy:?} n = {}",
                        row.n
                    );
                    assert!(
                        row.expected_variance.contains_rational(v),
                        "{strategy:?} n = {}",
                        row.n
                    );
                    assert!(
                        row.min_certified_digits() >= 30,
                        "{strategy:?} n = {}",
                        row.n
                    );
                }
                let t = strategy_theory(&s, 30).unwrap();
                assert!(t.exact && t.min_certified_digits() >= 30);
                for (row, (e, v)) in t.rows.iter().zip(&exact) {
                    assert!(row.mean_sq_error.contains_rational(e));
                    assert!(row.expected_variance.contains_rational(v));
                }
            }
        }
    }
    // Past EXACT_GENERATIONS: balls with refinement, still enclosing the rationals.
    let s = with(
        &spec(
            "constant",
            Some(5),
            Estimator::Unbiased,
            1.0,
            EXACT_GENERATIONS + 100,
        ),
        Strategy::Keep(0.2),
    );
    let t = strategy_theory(&s, 40).unwrap();
    assert!(!t.exact && t.min_certified_digits() >= 40);
    let exact = exact_moments(&s);
    for (row, (e, v)) in t.rows.iter().zip(&exact) {
        assert!(row.mean_sq_error.contains_rational(e));
        assert!(row.expected_variance.contains_rational(v));
    }
    // K = 1: E[sigma_n^2] -> 0 geometrically, still certified relative to its size.
    let decay = spec("constant", Some(3), Estimator::Unbiased, 1.0, 2000);
    let t = strategy_theory(&with(&decay, Strategy::Keep(0.34)), 20).unwrap();
    let v = &t.rows[2000].expected_variance;
    assert!(v.to_f64() < 1e-100 && v.certified_digits() >= 20);
    assert!(Float::with_val(64, v.mid()) > 0);
}

/// strategies.7.1: the boundedness classification.
#[test]
fn boundedness_classification() {
    let c = |est, schedule: &str, m, strategy| {
        w2_bounded(&with(&spec(schedule, Some(m), est, 1.0, 5), strategy))
    };
    use Estimator::{Mle, Unbiased};
    assert_eq!(c(Unbiased, "constant", 10, Strategy::Replace), Some(false));
    assert_eq!(c(Mle, "constant", 10, Strategy::Replace), Some(true));
    assert_eq!(c(Unbiased, "power:1.5", 10, Strategy::Replace), Some(true));
    assert_eq!(c(Unbiased, "linear", 10, Strategy::Accumulate), Some(true));
    assert_eq!(
        c(Unbiased, "constant", 10, Strategy::AccumulateSubsample),
        Some(false)
    );
    assert_eq!(
        c(Mle, "constant", 10, Strategy::AccumulateSubsample),
        Some(true)
    );
    assert_eq!(c(Mle, "linear", 10, Strategy::Mix(0.1)), Some(true));
    assert_eq!(
        c(Unbiased, "linear", 10, Strategy::AccumulateSubsample),
        None
    );
    assert_eq!(c(Unbiased, "constant", 10, Strategy::Mix(0.1)), Some(true));
    assert_eq!(
        c(Unbiased, "constant", 10, Strategy::Mix(0.04)),
        Some(false)
    );
    assert_eq!(c(Unbiased, "linear", 10, Strategy::Mix(0.1)), None);
    assert_eq!(c(Unbiased, "constant", 10, Strategy::Keep(0.1)), Some(true));
    assert_eq!(c(Unbiased, "linear", 10, Strategy::Keep(0.01)), Some(false));
    assert_eq!(c(Unbiased, "linear", 10, Strategy::Keep(0.5)), None);
}

/// strategies.7.2: with the MLE, E[(mu_n - mu)^2] + E[sigma_n^2] = sigma^2 for every strategy,
/// schedule and n (the fit keeps the training set's mean square, and every point has
/// E[(x - mu)^2] = sigma^2).
#[test]
fn mle_keeps_the_second_moment() {
    let strategies = [
        Strategy::Replace,
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
        Strategy::Mix(0.3),
        Strategy::Keep(0.4),
    ];
    for (schedule, m) in [
        ("constant", Some(5)),
        ("linear", Some(2)),
        ("list:7,3,9", None),
    ] {
        let base = spec(schedule, m, Estimator::Mle, 1.9, 40);
        let s2 = Exact.sigma2(1.9);
        for strategy in strategies {
            let Ok(s) = base.clone().with_strategy(strategy) else {
                continue;
            };
            for (n, (e, v)) in exact_moments(&s).iter().enumerate() {
                assert_eq!(Rational::from(e + v), s2, "{strategy:?} {schedule} n = {n}");
            }
            assert_eq!(w2_bounded(&s), Some(true));
        }
    }
}

/// strategies.11.1, 11.2: a non-normal truth leaves e_n and v_n exactly as the normal truth's
/// (exact rationals equal, balls equal bit for bit), and raises the W2^2 bound to
/// e_n + sigma^2 (1 - rho^2) for n >= 1 (rho's upper end): for the normal truth (rho = 1) the
/// bound is e_n bit for bit, as before; for every truth it lies below the Jensen bound
/// e_n + v_n + sigma^2 - 2 rho sigma sqrt(v_n) (a second route from the same moments), and for
/// replace with the normal truth below the exact E[W2^2] of `gaussian::theory`.
#[test]
fn non_normal_truths_keep_the_moments_and_raise_the_w2_bound() {
    use crate::truth::Truth;
    let strategies = [
        Strategy::Replace,
        Strategy::Accumulate,
        Strategy::AccumulateSubsample,
        Strategy::Mix(0.3),
        Strategy::Keep(0.2),
    ];
    let truths = [
        Truth::Laplace,
        Truth::Student(10.0),
        Truth::Student(3.0),
        Truth::Uniform,
        Truth::Mixture,
    ];
    let sigma = 1.3;
    let sigma_ball = Ball::from_f64(64, sigma);
    let mut checked = 0;
    for est in ESTIMATORS {
        for (schedule, m) in [("constant", Some(10)), ("list:6,10,4,12", None)] {
            for strategy in strategies {
                let normal = with(&spec(schedule, m, est, sigma, 30), strategy);
                let tn = strategy_theory(&normal, 25).unwrap();
                // rho = 1: the bound is E[(mu_n - mu)^2] itself, as before.
                assert_eq!(w2_shape_floor(&normal), None);
                for r in &tn.rows {
                    assert_eq!(r.w2_sq_lower_bound.mid(), r.mean_sq_error.mid());
                    assert_eq!(r.w2_sq_lower_bound.rad(), r.mean_sq_error.rad());
                }
                if strategy == Strategy::Replace {
                    let g = crate::gaussian::theory(&normal, 25).unwrap();
                    for (r, gr) in tn.rows.iter().zip(&g.rows) {
                        assert!(r.w2_sq_lower_bound.lower() <= gr.expected_w2_sq.upper());
                    }
                }
                let exact = exact_moments(&normal);
                for truth in truths {
                    let s = normal.clone().with_truth(truth).unwrap();
                    assert_eq!(exact_moments(&s), exact, "{truth:?} {strategy:?}");
                    let t = strategy_theory(&s, 25).unwrap();
                    assert_eq!(t.precision_bits, tn.precision_bits);
                    assert!(t.min_certified_digits() >= 25, "{truth:?} {strategy:?}");
                    let c = truth.comonotone_correlation();
                    assert!(c.rho < 1.0);
                    let floor = sigma * sigma * (1.0 - c.rho * c.rho);
                    let rho = Ball::from_f64(64, c.rho).widen(&Float::with_val(64, c.error_bound));
                    for (r, rn) in t.rows.iter().zip(&tn.rows) {
                        let what = format!("{truth:?} {strategy:?} {est:?} {schedule} n = {}", r.n);
                        for (a, b) in [
                            (&r.mean_sq_error, &rn.mean_sq_error),
                            (&r.expected_variance, &rn.expected_variance),
                        ] {
                            assert_eq!(a.mid(), b.mid(), "{what}");
                            assert_eq!(a.rad(), b.rad(), "{what}");
                        }
                        let bound = &r.w2_sq_lower_bound;
                        if r.n == 0 {
                            // Generation 0 is D0 itself: W2 = 0.
                            assert_eq!(bound.to_f64(), 0.0, "{what}");
                            continue;
                        }
                        // rho's upper end lowers the gain by at most 2 sigma^2 error_bound.
                        let gain = bound.to_f64() - r.mean_sq_error.to_f64();
                        let slack = 2.0 * sigma * sigma * c.error_bound;
                        assert!(
                            gain <= floor + 1e-14 && gain >= floor - slack - 1e-14,
                            "{what}: {gain} {floor}"
                        );
                        let v = &r.expected_variance;
                        let jensen = r
                            .mean_sq_error
                            .add(v)
                            .add(&sigma_ball.square())
                            .sub(&rho.mul(&sigma_ball).mul(&v.sqrt()).mul_f64(2.0));
                        assert!(bound.lower() <= jensen.upper(), "{what}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * 5 * 5 * 30);
}
