use super::*;
use crate::rng::stream;
use crate::stats::ks_statistic;
use proptest::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// sqrt(n) D above 2.63 has probability about 2e-6 under the null (Kolmogorov distribution).
const KS_CRITICAL: f64 = 2.63;

fn ks_scaled(xs: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let n = xs.len() as f64;
    ks_statistic(xs, cdf) * n.sqrt()
}

#[test]
fn value_stability() {
    let mut rng = ChainRng::for_chain(2024, stream::TEST, 0);
    let fit = fit_normals(&mut rng, 7);
    let draw = sufficient_draw(&mut rng, &ChiSquareConstants::new(99.0));
    let boosted = sufficient_draw(&mut rng, &ChiSquareConstants::new(1.0));
    let got = [fit.0, fit.1, draw.0, draw.1, boosted.0, boosted.1];
    for (g, p) in got.iter().zip(PINNED) {
        assert_eq!(g.to_bits(), p.to_bits(), "got {got:?}");
    }
}

const PINNED: [f64; 6] = [
    0.21203081232102705,
    7.073384291146181,
    0.05436153777280728,
    100.27020538300094,
    0.31663735437057094,
    0.3812259955008981,
];

/// The fitted mean of M standard normals is N(0, 1/M) and the sum of squares chi-square(M - 1),
/// for even and odd M.
#[test]
fn fits_have_the_exact_laws() {
    let normal = Normal::new(0.0, 1.0).unwrap();
    for (i, m) in [2u64, 3, 10, 101].into_iter().enumerate() {
        let chi2 = ChiSquared::new((m - 1) as f64).unwrap();
        let n = 50_000;
        let mut rngs: Vec<ChainRng> = (0..n)
            .map(|c| ChainRng::for_chain(17 + i as u64, stream::TEST, c))
            .collect();
        let (mut means, mut ss) = (vec![0.0; n as usize], vec![0.0; n as usize]);
        fit_normals_many(&mut rngs, m, &mut means, &mut ss);
        let mut standardised: Vec<f64> = means.iter().map(|x| x * (m as f64).sqrt()).collect();
        assert!(
            ks_scaled(&mut standardised, |x| normal.cdf(x)) < KS_CRITICAL,
            "M = {m}: mean"
        );
        assert!(
            ks_scaled(&mut ss, |x| chi2.cdf(x)) < KS_CRITICAL,
            "M = {m}: SS"
        );
    }
}

#[test]
fn sufficient_draws_have_the_exact_laws() {
    let normal = Normal::new(0.0, 1.0).unwrap();
    for (i, dof) in [1.0, 2.0, 3.0, 9.0, 99.0, 999.0].into_iter().enumerate() {
        let chi = ChiSquareConstants::new(dof);
        let reference = ChiSquared::new(dof).unwrap();
        let n = 50_000;
        let mut rngs: Vec<ChainRng> = (0..n)
            .map(|c| ChainRng::for_chain(40 + i as u64, stream::TEST, c))
            .collect();
        let (mut zs, mut ss) = (vec![0.0; n as usize], vec![0.0; n as usize]);
        sufficient_draw_many(&mut rngs, &chi, &mut zs, &mut ss);
        assert!(
            ks_scaled(&mut zs, |x| normal.cdf(x)) < KS_CRITICAL,
            "dof {dof}: z"
        );
        assert!(
            ks_scaled(&mut ss.clone(), |x| reference.cdf(x)) < KS_CRITICAL,
            "dof {dof}: SS"
        );
        // Power: a 3% scale error in SS is caught (for dof >= 9 at this size).
        let mut scaled: Vec<f64> = ss.iter().map(|x| 1.03 * x).collect();
        if dof >= 9.0 {
            assert!(
                ks_scaled(&mut scaled, |x| reference.cdf(x)) > KS_CRITICAL,
                "dof {dof}: power"
            );
        }
    }
}

/// The exact sum of squared deviations of `zs` (doubles, hence exact rationals) and the sum
/// of their squares.
fn exact_ss(zs: &[f64]) -> (rug::Rational, rug::Rational) {
    use rug::Rational;
    let (mut sum, mut sum_sq) = (Rational::new(), Rational::new());
    for &z in zs {
        let r = Rational::from_f64(z).expect("finite normal");
        sum += &r;
        sum_sq += Rational::from(r.square_ref());
    }
    let ss = &sum_sq - Rational::from(sum.square_ref()) / zs.len() as u64;
    (ss, sum_sq)
}

/// |computed - exact| / exact for an exact positive `exact`, exactly.
fn relative_error(computed: f64, exact: &rug::Rational) -> rug::Rational {
    let computed = rug::Rational::from_f64(computed).expect("finite SS");
    (rug::Rational::from(&computed - exact) / exact).abs()
}

/// proofs/gaussian.md, claim gaussian.1.6: the SS of `fit_normals` (and of its vector twin
/// `fit_normals_many`) has relative error at most 4 M^2 2^-53 against the exact SS of the same
/// f64 normals (redrawn from a clone of each chain's stream and summed in exact rationals),
/// and at most (1 + 2^-53)^3 - 1 for M = 2, all compared exactly; at M = 2 the draws reach SS
/// below 1e-9 of sum z^2, where the naive sum z^2 - M zbar^2 on the same normals breaks the
/// bound.
#[test]
fn fit_normals_sum_of_squares_keeps_relative_accuracy() {
    use rug::Rational;
    let u = Rational::from((1, 1u64 << 53));
    let normal = StandardNormal::new();
    let cases = [
        (2u64, 100_000u64),
        (3, 20_000),
        (5, 5_000),
        (10, 2_000),
        (100, 200),
        (1000, 40),
    ];
    for (i, (m, chains)) in cases.into_iter().enumerate() {
        let bound = if m == 2 {
            let one_plus_u = Rational::from(&u + 1u32);
            Rational::from(one_plus_u.square_ref()) * &one_plus_u - 1u32
        } else {
            Rational::from(&u * (4 * m * m))
        };
        let mut rngs: Vec<ChainRng> = (0..chains)
            .map(|c| ChainRng::for_chain(90 + i as u64, stream::TEST, c))
            .collect();
        let (mut means, mut ss_many) = (vec![0.0; chains as usize], vec![0.0; chains as usize]);
        fit_normals_many(&mut rngs.clone(), m, &mut means, &mut ss_many);
        let (mut worst, mut worst_naive) = (Rational::new(), Rational::new());
        let mut smallest_ratio = f64::INFINITY;
        let mut zs = vec![0.0; m as usize];
        for (c, rng) in rngs.iter_mut().enumerate() {
            let mut replay = rng.clone();
            for z in zs.iter_mut() {
                *z = normal.sample(&mut replay);
            }
            let (_, ss) = fit_normals(rng, m);
            assert_eq!(*rng, replay, "fit_normals draws exactly M normals");
            assert_eq!(ss.to_bits(), ss_many[c].to_bits(), "vector twin, chain {c}");
            let (exact, sum_sq) = exact_ss(&zs);
            assert!(exact > 0, "M = {m}, chain {c}: repeated normal");
            let err = relative_error(ss, &exact);
            assert!(
                err <= bound,
                "M = {m}, chain {c}: SS {ss:e}, relative error {} > {} ({zs:?})",
                err.to_f64(),
                bound.to_f64()
            );
            worst = worst.max(err);
            smallest_ratio = smallest_ratio.min(Rational::from(&exact / &sum_sq).to_f64());
            let zbar = zs.iter().sum::<f64>() / m as f64;
            let naive = zs.iter().map(|z| z * z).sum::<f64>() - m as f64 * zbar * zbar;
            worst_naive = worst_naive.max(relative_error(naive, &exact));
        }
        println!(
            "M = {m}: worst relative error {:.3} ulps (bound {:.0}), naive {:e}, \
             smallest SS / sum z^2 {smallest_ratio:e}",
            Rational::from(&worst / &u).to_f64(),
            Rational::from(&bound / &u).to_f64(),
            worst_naive.to_f64()
        );
        if m == 2 {
            // The draws reach the regime the claim is about, and there the bound has power.
            assert!(smallest_ratio < 1e-9, "{smallest_ratio:e}");
            assert!(worst_naive > bound, "{}", worst_naive.to_f64());
        }
    }
}

proptest! {
    /// Vector kernels (when the CPU has AVX2 and FMA) give the scalar bits and leave every
    /// stream where the scalar code leaves it, for block lengths with and without a remainder.
    #[test]
    fn many_match_scalar(
        seed in any::<u64>(),
        chains in prop_oneof![1usize..24, 60usize..150],
        count in prop_oneof![1u64..8, 100u64..300],
        dof in prop_oneof![Just(1.0f64), Just(2.0), Just(3.0), 1.0f64..200.0],
    ) {
        let make = || (0..chains as u64).map(|c| ChainRng::for_chain(seed, stream::TEST, c)).collect::<Vec<_>>();
        let (mut rngs, mut singles) = (make(), make());
        let (mut a, mut b) = (vec![0.0; chains], vec![0.0; chains]);
        fit_normals_many(&mut rngs, count, &mut a, &mut b);
        for (j, rng) in singles.iter_mut().enumerate() {
            let (mean, ss) = fit_normals(rng, count);
            prop_assert_eq!((mean.to_bits(), ss.to_bits()), (a[j].to_bits(), b[j].to_bits()));
            prop_assert_eq!(&*rng, &rngs[j]);
        }
        let chi = ChiSquareConstants::new(dof);
        sufficient_draw_many(&mut rngs, &chi, &mut a, &mut b);
        for (j, rng) in singles.iter_mut().enumerate() {
            let (z, ss) = sufficient_draw(rng, &chi);
            prop_assert_eq!((z.to_bits(), ss.to_bits()), (a[j].to_bits(), b[j].to_bits()));
            prop_assert_eq!(&*rng, &rngs[j]);
        }
        let start: Vec<f64> = (0..chains).map(|j| j as f64 * 0.37 - 3.0).collect();
        let (mut mo, mut lv, mut sg) = (start.clone(), start.clone(), start.iter().map(|x| x.abs()).collect::<Vec<_>>());
        let (mut mo2, mut lv2, mut sg2) = (mo.clone(), lv.clone(), sg.clone());
        update_chains(&mut mo, &mut lv, &mut sg, &a, 0.1, &b, 4.6);
        for j in 0..chains {
            update_chain(&mut mo2[j], &mut lv2[j], &mut sg2[j], (a[j], 0.1), b[j], 4.6);
            prop_assert_eq!(
                (mo[j].to_bits(), lv[j].to_bits(), sg[j].to_bits()),
                (mo2[j].to_bits(), lv2[j].to_bits(), sg2[j].to_bits())
            );
        }
    }
}
