use super::*;

fn two_blobs() -> Mixture {
    Mixture::new(
        vec![0.3, 0.7],
        vec![vec![-1.0, 0.5], vec![1.5, -0.2]],
        vec![
            vec![vec![0.8, 0.3], vec![0.3, 0.5]],
            vec![vec![0.4, -0.1], vec![-0.1, 1.2]],
        ],
    )
    .unwrap()
}

/// Claim gmm.1.1: the closed form against the midpoint rule on a 2-D grid (an independent
/// route: the densities themselves, squared and summed). The grid covers +-9 around the origin
/// (the tails beyond carry < 1e-12) at spacing 0.02, whose error for these smooth densities is
/// far below the 1e-6 relative tolerance.
#[test]
fn l2_closed_form_matches_quadrature() {
    let a = two_blobs();
    let b = Mixture::standard_normal(2);
    let h = 0.02;
    let n = (18.0 / h) as i32;
    let mut sum = 0.0;
    for i in 0..n {
        for j in 0..n {
            let x = [
                -9.0 + (f64::from(i) + 0.5) * h,
                -9.0 + (f64::from(j) + 0.5) * h,
            ];
            let diff = a.density(&x) - b.density(&x);
            sum += diff * diff;
        }
    }
    let quad = sum * h * h;
    let closed = l2_sq(&a, &b);
    assert!((closed - quad).abs() <= 1e-6 * quad, "{closed} vs {quad}");
    // A metric's square: zero on equal mixtures, symmetric.
    assert_eq!(l2_sq(&a, &a), 0.0);
    assert!((l2_sq(&a, &b) - l2_sq(&b, &a)).abs() <= 1e-15 * closed);
    // ||N(0, s^2 I_2)||^2 = 1 / (4 pi s^2): narrow components have large L2 norms.
    let narrow = Mixture::new(
        vec![1.0],
        vec![vec![0.0, 0.0]],
        vec![vec![vec![1e-4, 0.0], vec![0.0, 1e-4]]],
    )
    .unwrap();
    let far = Mixture::new(
        vec![1.0],
        vec![vec![1e3, 0.0]],
        vec![vec![vec![1.0, 0.0], vec![0.0, 1.0]]],
    )
    .unwrap();
    let expected = 1.0 / (4.0 * std::f64::consts::PI * 1e-4) + 1.0 / (4.0 * std::f64::consts::PI);
    assert!((l2_sq(&narrow, &far) - expected).abs() <= 1e-12 * expected);
}

/// Claim gmm.2.1: the moments of a mixture against the grid (first and second moments).
#[test]
fn moments_match_quadrature_and_one_component_is_itself() {
    let a = two_blobs();
    let (mean, cov) = a.moments();
    let h = 0.02;
    let n = (24.0 / h) as i32;
    let (mut m, mut s) = ([0.0; 2], [[0.0; 2]; 2]);
    for i in 0..n {
        for j in 0..n {
            let x = [
                -12.0 + (f64::from(i) + 0.5) * h,
                -12.0 + (f64::from(j) + 0.5) * h,
            ];
            let p = a.density(&x) * h * h;
            for r in 0..2 {
                m[r] += p * x[r];
                for c in 0..2 {
                    s[r][c] += p * x[r] * x[c];
                }
            }
        }
    }
    for r in 0..2 {
        assert!((mean[r] - m[r]).abs() < 1e-8, "{mean:?} vs {m:?}");
        for c in 0..2 {
            let quad = s[r][c] - m[r] * m[c];
            assert!((cov[(r, c)] - quad).abs() < 1e-6, "{cov} vs {s:?}");
        }
    }
    let one = Mixture::standard_normal(3);
    assert_eq!(one.moment_matched(), one);
    // The functional error of one Gaussian for a two-component truth is positive.
    assert!(l2_sq(&a, &a.moment_matched()) > 1e-3);
}

#[test]
fn bad_mixtures_and_specs_are_refused_with_a_reason() {
    let id = || vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    let err = |r: Result<Mixture, SpecError>| r.unwrap_err().to_string();
    assert!(
        err(Mixture::new(
            vec![0.5, 0.6],
            vec![vec![0.0; 2]; 2],
            vec![id(), id()]
        ))
        .contains("sum to 1")
    );
    assert!(err(Mixture::new(vec![], vec![], vec![])).contains("components"));
    assert!(err(Mixture::new(vec![f64::NAN], vec![vec![0.0; 2]], vec![id()])).contains("weight"));
    assert!(
        err(Mixture::new(
            vec![1.0],
            vec![vec![0.0; 2]],
            vec![vec![vec![1.0, 2.0], vec![2.0, 1.0]]]
        ))
        .contains("positive definite")
    );
    assert!(
        err(Mixture::new(
            vec![1.0],
            vec![vec![0.0; 2]],
            vec![vec![vec![1.0, 0.5], vec![0.0, 1.0]]]
        ))
        .contains("symmetric")
    );
    assert!(err(Mixture::new(vec![1.0], vec![vec![0.0; 3]], vec![id()])).contains("3 x 3"));
    let truth = Mixture::standard_normal(2);
    // M >= K (d + 1): 2 components in 2-D need 6 points.
    assert!(GmmSpec::new(2, Schedule::constant(5), 3, truth.clone()).is_err());
    assert!(GmmSpec::new(2, Schedule::constant(6), 3, truth.clone()).is_ok());
    assert!(GmmSpec::new(0, Schedule::constant(100), 3, truth.clone()).is_err());
    let spec = GmmSpec::paper(1000, 10).unwrap();
    assert_eq!((spec.components, spec.dim), (2, 2));
    assert!(spec.clone().with_strategy(Strategy::Keep(1.5)).is_err());
    assert!(spec.with_strategy(Strategy::Mix(0.1)).is_ok());
}
