//! Convolutions against direct nested-loop `f64` references (written without im2col):
//! forward values, finite-difference gradients, the adjoint identity, hand-computed examples,
//! the paper's VAE shapes, bad arguments and determinism across thread counts.
//!
//! Tolerances as in `nn/tests.rs`: |g - d| <= GRAD_TOL (1 + |d|) with central differences of
//! step h = 1e-6 (1 + |x|).

use super::*;
use crate::nn::tests::{check_grad, check_value, dot, fd_grad, rng, uniform, wide};
use proptest::prelude::*;

// ---- f64 references: direct sums over the definitions ----

/// Shapes of a reference convolution: `batch` images of `c_in x h x w`, `c_out` outputs.
#[derive(Debug, Clone, Copy)]
struct Shape {
    batch: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
}

/// y[n,o,i,j] = b[o] + sum_{c,u,v} W[o,c,u,v] x[n,c,i s+u-p, j s+v-p], W of c_out x c_in x k x k.
fn conv_ref(x: &[f64], wt: &[f64], b: &[f64], sh: Shape) -> Vec<f64> {
    let Shape {
        batch,
        c_in,
        c_out,
        h,
        w,
        k,
        s,
        p,
    } = sh;
    let oh = (h + 2 * p - k) / s + 1;
    let ow = (w + 2 * p - k) / s + 1;
    let mut y = vec![0.0; batch * c_out * oh * ow];
    for n in 0..batch {
        for o in 0..c_out {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = b[o];
                    for c in 0..c_in {
                        for u in 0..k {
                            for v in 0..k {
                                let (iy, ix) = (
                                    (i * s + u) as isize - p as isize,
                                    (j * s + v) as isize - p as isize,
                                );
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                acc += wt[((o * c_in + c) * k + u) * k + v]
                                    * x[((n * c_in + c) * h + iy as usize) * w + ix as usize];
                            }
                        }
                    }
                    y[((n * c_out + o) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    y
}

/// y[n,o,i s+u-p, j s+v-p] += W[c,o,u,v] x[n,c,i,j], plus b[o], W of c_in x c_out x k x k;
/// output side (h - 1) s - 2p + k + op.
fn conv_t_ref(x: &[f64], wt: &[f64], b: &[f64], sh: Shape, op: usize) -> Vec<f64> {
    let Shape {
        batch,
        c_in,
        c_out,
        h,
        w,
        k,
        s,
        p,
    } = sh;
    let oh = (h - 1) * s + k + op - 2 * p;
    let ow = (w - 1) * s + k + op - 2 * p;
    let mut y = vec![0.0; batch * c_out * oh * ow];
    for n in 0..batch {
        for o in 0..c_out {
            for v in &mut y[(n * c_out + o) * oh * ow..][..oh * ow] {
                *v = b[o];
            }
        }
        for c in 0..c_in {
            for i in 0..h {
                for j in 0..w {
                    let xv = x[((n * c_in + c) * h + i) * w + j];
                    for o in 0..c_out {
                        for u in 0..k {
                            for v in 0..k {
                                let (oy, ox) = (
                                    (i * s + u) as isize - p as isize,
                                    (j * s + v) as isize - p as isize,
                                );
                                if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                    continue;
                                }
                                y[((n * c_out + o) * oh + oy as usize) * ow + ox as usize] +=
                                    wt[((c * c_out + o) * k + u) * k + v] * xv;
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// A Conv2d for `sh` with random weights and bias in [-1, 1] (not only the initialiser's).
fn conv_layer(sh: Shape, r: &mut ChainRng) -> Conv2d {
    let mut l = Conv2d::new(
        sh.c_in,
        sh.c_out,
        sh.k,
        sh.s,
        sh.p,
        sh.h,
        sh.w,
        Init::PyTorch,
        r,
    )
    .unwrap();
    l.weight = uniform(r, l.weight.len(), -1.0, 1.0);
    l.bias = uniform(r, l.bias.len(), -1.0, 1.0);
    l
}

fn conv_t_layer(sh: Shape, op: usize, r: &mut ChainRng) -> ConvTranspose2d {
    let mut l = ConvTranspose2d::new(
        sh.c_in,
        sh.c_out,
        sh.k,
        sh.s,
        sh.p,
        op,
        sh.h,
        sh.w,
        Init::PyTorch,
        r,
    )
    .unwrap();
    l.weight = uniform(r, l.weight.len(), -1.0, 1.0);
    l.bias = uniform(r, l.bias.len(), -1.0, 1.0);
    l
}

/// Checks that a second backward pass doubles the parameter gradients, that
/// `backward_params` adds the same gradients, and that `zero_grad` clears them.
fn check_accumulation(
    grads: &mut dyn FnMut(bool) -> (Vec<f32>, Vec<f32>),
) -> Result<(), TestCaseError> {
    let (w1, b1) = grads(true);
    let (w2, b2) = grads(false);
    for (a, b) in w2.iter().zip(&w1).chain(b2.iter().zip(&b1)) {
        prop_assert!(
            (a - 2.0 * b).abs() <= 1e-6 * (1.0 + b.abs()),
            "{a} vs 2 x {b}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Forward against the reference; dx, dW and db against finite differences of
    /// L = <r, conv_ref(x)>, with chunks of 1 to 3 images so that chunk boundaries are crossed.
    #[test]
    fn conv2d_matches_reference_and_finite_differences(
        batch in 1usize..4, c_in in 1usize..5, c_out in 1usize..5, k in 1usize..5,
        s in 1usize..4, p in 0usize..3, dh in 0usize..4, dw in 0usize..4,
        chunk in 1usize..4, seed: u64,
    ) {
        // The smallest input the kernel fits, plus a few.
        let min = k.saturating_sub(2 * p).max(1);
        let sh = Shape { batch, c_in, c_out, h: min + dh, w: min + dw, k, s, p };
        let mut r = rng(seed);
        let mut layer = conv_layer(sh, &mut r);
        layer.chunk_images = chunk;
        let x = uniform(&mut r, batch * layer.input_len(), -2.0, 2.0);
        let proj = wide(&uniform(&mut r, batch * layer.output_len(), -1.0, 1.0));
        let dy: Vec<f32> = proj.iter().map(|&v| v as f32).collect();
        let (x64, w64, b64) = (wide(&x), wide(&layer.weight), wide(&layer.bias));

        let y = layer.forward(&x, batch).to_vec();
        let y_ref = conv_ref(&x64, &w64, &b64, sh);
        let (oc, oh, ow) = layer.output_shape();
        prop_assert_eq!(oc * oh * ow * batch, y_ref.len());
        check_value("y", &y, &y_ref, 1e-5)?;
        let dx = layer.backward(&dy).to_vec();

        let fd_x = fd_grad(|x| dot(&proj, &conv_ref(x, &w64, &b64, sh)), &x64);
        let fd_w = fd_grad(|w| dot(&proj, &conv_ref(&x64, w, &b64, sh)), &w64);
        let fd_b = fd_grad(|b| dot(&proj, &conv_ref(&x64, &w64, b, sh)), &b64);
        check_grad("dx", &dx, &fd_x)?;
        check_grad("dW", &layer.grad_weight, &fd_w)?;
        check_grad("db", &layer.grad_bias, &fd_b)?;

        check_accumulation(&mut |full| {
            if full {
                layer.zero_grad();
                layer.backward(&dy);
            } else {
                layer.backward_params(&dy);
            }
            (layer.grad_weight.clone(), layer.grad_bias.clone())
        })?;
        layer.zero_grad();
        prop_assert!(layer.grad_weight.iter().chain(&layer.grad_bias).all(|&g| g == 0.0));
    }

    #[test]
    fn conv_transpose2d_matches_reference_and_finite_differences(
        batch in 1usize..4, c_in in 1usize..5, c_out in 1usize..5, k in 1usize..5,
        s in 1usize..4, p in 0usize..3, op in 0usize..3, h in 1usize..5, w in 1usize..5,
        chunk in 1usize..4, seed: u64,
    ) {
        let op = op % s;
        // Outputs of at least one pixel.
        prop_assume!((h - 1) * s + k + op > 2 * p && (w - 1) * s + k + op > 2 * p);
        let sh = Shape { batch, c_in, c_out, h, w, k, s, p };
        let mut r = rng(seed);
        let mut layer = conv_t_layer(sh, op, &mut r);
        layer.chunk_images = chunk;
        let x = uniform(&mut r, batch * layer.input_len(), -2.0, 2.0);
        let proj = wide(&uniform(&mut r, batch * layer.output_len(), -1.0, 1.0));
        let dy: Vec<f32> = proj.iter().map(|&v| v as f32).collect();
        let (x64, w64, b64) = (wide(&x), wide(&layer.weight), wide(&layer.bias));

        let y = layer.forward(&x, batch).to_vec();
        let y_ref = conv_t_ref(&x64, &w64, &b64, sh, op);
        let (oc, oh, ow) = layer.output_shape();
        prop_assert_eq!(oc * oh * ow * batch, y_ref.len());
        check_value("y", &y, &y_ref, 1e-5)?;
        let dx = layer.backward(&dy).to_vec();

        let fd_x = fd_grad(|x| dot(&proj, &conv_t_ref(x, &w64, &b64, sh, op)), &x64);
        let fd_w = fd_grad(|w| dot(&proj, &conv_t_ref(&x64, w, &b64, sh, op)), &w64);
        let fd_b = fd_grad(|b| dot(&proj, &conv_t_ref(&x64, &w64, b, sh, op)), &b64);
        check_grad("dx", &dx, &fd_x)?;
        check_grad("dW", &layer.grad_weight, &fd_w)?;
        check_grad("db", &layer.grad_bias, &fd_b)?;

        check_accumulation(&mut |full| {
            if full {
                layer.zero_grad();
                layer.backward(&dy);
            } else {
                layer.backward_params(&dy);
            }
            (layer.grad_weight.clone(), layer.grad_bias.clone())
        })?;
    }

    /// With the same weight and no bias, the transposed convolution is the adjoint of the
    /// convolution: <conv(x), y> = <x, conv_t(y)>.
    #[test]
    fn conv_transpose2d_is_the_adjoint_of_conv2d(
        batch in 1usize..3, c_in in 1usize..5, c_out in 1usize..5, k in 1usize..5,
        s in 1usize..4, p in 0usize..3, dh in 0usize..5, dw in 0usize..5, seed: u64,
    ) {
        let min = k.saturating_sub(2 * p).max(1);
        let h = min + dh;
        // The output padding that makes the transposed convolution's output h x w again;
        // w is raised so that it is the same along both sides.
        let op = (h + 2 * p - k) % s;
        let w = min + dw;
        let w = w + (op + s - (w + 2 * p - k) % s) % s;
        let mut r = rng(seed);
        let mut conv = Conv2d::new(c_in, c_out, k, s, p, h, w, Init::PyTorch, &mut r).unwrap();
        let (_, oh, ow) = conv.output_shape();
        let mut conv_t =
            ConvTranspose2d::new(c_out, c_in, k, s, p, op, oh, ow, Init::PyTorch, &mut r).unwrap();
        prop_assert_eq!(conv_t.output_shape(), (c_in, h, w));
        prop_assert_eq!(conv_t.input_len(), conv.output_len());
        conv_t.weight = conv.weight.clone();
        conv.bias.fill(0.0);
        conv_t.bias.fill(0.0);
        let x = uniform(&mut r, batch * conv.input_len(), -1.0, 1.0);
        let y = uniform(&mut r, batch * conv.output_len(), -1.0, 1.0);
        let cx = wide(conv.forward(&x, batch));
        let ty = wide(conv_t.forward(&y, batch));
        let (lhs, rhs) = (dot(&cx, &wide(&y)), dot(&wide(&x), &ty));
        let scale: f64 = cx.iter().zip(&y).map(|(a, &b)| (a * f64::from(b)).abs()).sum();
        // Both sides are within ~k^2 c ulps per term of the exact value.
        prop_assert!((lhs - rhs).abs() <= 1e-5 * (1.0 + scale), "{lhs} vs {rhs}");
    }
}

// ---- hand-computed examples ----

/// x = [1..9] as 3 x 3, W = [1 2; 3 4], b = 0.5, stride 1, no padding:
/// y = [1+4+12+20, 2+6+15+24; 4+10+21+32, 5+12+24+36] + 0.5 = [37.5 47.5; 67.5 77.5].
/// With dy = 1: dx[i, j] sums the weights covering (i, j) = [1 3 2; 4 10 6; 3 7 4],
/// dW[u, v] sums the 2 x 2 windows of x shifted by (u, v) = [12 16; 24 28], db = 4.
#[test]
fn conv2d_matches_a_hand_computed_example() {
    let mut r = rng(1);
    let mut l = Conv2d::new(1, 1, 2, 1, 0, 3, 3, Init::PyTorch, &mut r).unwrap();
    l.weight = vec![1.0, 2.0, 3.0, 4.0];
    l.bias = vec![0.5];
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    assert_eq!(l.forward(&x, 1), [37.5, 47.5, 67.5, 77.5]);
    assert_eq!(
        l.backward(&[1.0; 4]),
        [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]
    );
    assert_eq!(l.grad_weight, [12.0, 16.0, 24.0, 28.0]);
    assert_eq!(l.grad_bias, [4.0]);

    // A 3 x 3 kernel of ones, stride 2, padding 1: each output sums the 2 x 2 corner of x
    // its window overlaps, [1+2+4+5, 2+3+5+6; 4+5+7+8, 5+6+8+9].
    let mut l = Conv2d::new(1, 1, 3, 2, 1, 3, 3, Init::PyTorch, &mut r).unwrap();
    l.weight = vec![1.0; 9];
    l.bias = vec![0.0];
    assert_eq!(l.output_shape(), (1, 2, 2));
    assert_eq!(l.forward(&x, 1), [12.0, 16.0, 24.0, 28.0]);
}

/// x = [1 2; 3 4], W = [1 2; 3 4], kernel 2, stride 2: every x[i, j] W block lands on its
/// own 2 x 2 tile of the 4 x 4 output. With padding 1 the output is the central 2 x 2:
/// [1*4, 2*3; 3*2, 4*1] = [4 6; 6 4].
#[test]
fn conv_transpose2d_matches_a_hand_computed_example() {
    let mut r = rng(1);
    let mut l = ConvTranspose2d::new(1, 1, 2, 2, 0, 0, 2, 2, Init::PyTorch, &mut r).unwrap();
    l.weight = vec![1.0, 2.0, 3.0, 4.0];
    l.bias = vec![0.0];
    assert_eq!(l.output_shape(), (1, 4, 4));
    let x = [1.0, 2.0, 3.0, 4.0];
    #[rustfmt::skip]
    let want = [
        1.0, 2.0, 2.0, 4.0,
        3.0, 4.0, 6.0, 8.0,
        3.0, 6.0, 4.0, 8.0,
        9.0, 12.0, 12.0, 16.0,
    ];
    assert_eq!(l.forward(&x, 1), want);
    // dy = 1: dx[i, j] = sum of W = 10, dW[u, v] = sum of x = 10, db = 16.
    assert_eq!(l.backward(&[1.0; 16]), [10.0; 4]);
    assert_eq!(l.grad_weight, [10.0; 4]);
    assert_eq!(l.grad_bias, [16.0]);

    let mut l = ConvTranspose2d::new(1, 1, 2, 2, 1, 0, 2, 2, Init::PyTorch, &mut r).unwrap();
    l.weight = vec![1.0, 2.0, 3.0, 4.0];
    l.bias = vec![0.0];
    assert_eq!(l.output_shape(), (1, 2, 2));
    assert_eq!(l.forward(&x, 1), [4.0, 6.0, 6.0, 4.0]);
}

// ---- the paper's VAE ----

/// Encoder Conv(1->64, 4, s2, p1) 28 -> 14 and Conv(64->128, 4, s2, p1) 14 -> 7; decoder
/// ConvT(128->64, 4, s2, p1) 7 -> 14 and ConvT(64->1, 4, s2, p1) 14 -> 28.
#[test]
fn paper_vae_layers_have_pytorch_shapes_and_parameter_counts() {
    let mut r = rng(5);
    let c1 = Conv2d::new(1, 64, 4, 2, 1, 28, 28, Init::PyTorch, &mut r).unwrap();
    let c2 = Conv2d::new(64, 128, 4, 2, 1, 14, 14, Init::PyTorch, &mut r).unwrap();
    let t1 = ConvTranspose2d::new(128, 64, 4, 2, 1, 0, 7, 7, Init::PyTorch, &mut r).unwrap();
    let t2 = ConvTranspose2d::new(64, 1, 4, 2, 1, 0, 14, 14, Init::PyTorch, &mut r).unwrap();
    assert_eq!(c1.output_shape(), (64, 14, 14));
    assert_eq!(c2.output_shape(), (128, 7, 7));
    assert_eq!(t1.output_shape(), (64, 14, 14));
    assert_eq!(t2.output_shape(), (1, 28, 28));
    assert_eq!((c1.input_len(), c1.output_len()), (784, 64 * 196));
    assert_eq!((t2.input_len(), t2.output_len()), (64 * 196, 784));
    assert_eq!(c1.parameters(), 1088);
    assert_eq!(c2.parameters(), 131_200);
    assert_eq!(t1.parameters(), 131_136);
    assert_eq!(t2.parameters(), 1025);
    // PyTorch's default bounds 1/sqrt(fan_in): fan_in = in_c k k for Conv2d, out_c k k for
    // ConvTranspose2d (W's dimension 1).
    for (params, fan_in) in [
        ([&c1.weight, &c1.bias], 16.0f32),
        ([&c2.weight, &c2.bias], 1024.0),
        ([&t1.weight, &t1.bias], 1024.0),
        ([&t2.weight, &t2.bias], 16.0),
    ] {
        let bound = 1.0 / fan_in.sqrt();
        for p in params {
            assert!(p.iter().all(|v| v.abs() <= bound), "bound {bound}");
        }
        assert!(
            params[0].iter().any(|v| v.abs() > 0.9 * bound),
            "bound {bound}"
        );
    }
    // The other initialisations leave the bias at zero.
    let l = ConvTranspose2d::new(3, 2, 3, 1, 0, 0, 4, 4, Init::KaimingUniform, &mut r).unwrap();
    let bound = (6.0f32 / 18.0).sqrt();
    assert!(l.weight.iter().all(|v| v.abs() <= bound) && l.bias.iter().all(|&v| v == 0.0));
}

#[test]
fn constructors_reject_bad_input() {
    let conv = |c_in, c_out, k, s, p, h, w| {
        let mut r = rng(1);
        Conv2d::new(c_in, c_out, k, s, p, h, w, Init::PyTorch, &mut r).map(|_| ())
    };
    let message = |e: SimError| e.to_string();
    assert!(conv(1, 1, 3, 1, 0, 3, 3).is_ok());
    assert!(message(conv(0, 1, 3, 1, 0, 3, 3).unwrap_err()).contains("in_channels"));
    assert!(message(conv(1, 0, 3, 1, 0, 3, 3).unwrap_err()).contains("out_channels"));
    assert!(message(conv(1, 1, 0, 1, 0, 3, 3).unwrap_err()).contains("kernel"));
    assert!(message(conv(1, 1, 3, 0, 0, 3, 3).unwrap_err()).contains("stride"));
    assert!(message(conv(1, 1, 3, 1, 0, 0, 3).unwrap_err()).contains("in_height"));
    assert!(message(conv(1, 1, 3, 1, 0, 3, 0).unwrap_err()).contains("in_width"));
    let e = message(conv(1, 1, 4, 1, 0, 3, 3).unwrap_err());
    assert!(
        e.starts_with("invalid conv2d layer: kernel 4 is larger"),
        "{e}"
    );
    assert!(conv(1, 1, 5, 1, 1, 2, 4).is_err()); // padded 4 x 6: the height fails
    assert!(conv(1, 1, 5, 1, 1, 4, 2).is_err());
    assert!(conv(1, 1, 5, 1, 1, 3, 3).is_ok()); // padded 5 x 5: one output
    let e = message(conv(1, 1, 1, 1, usize::MAX / 2, 3, 3).unwrap_err());
    assert!(e.contains("padding") && e.contains("too large"), "{e}");
    assert!(conv(1, 1, 1, 1, 0, usize::MAX, 3).is_err());
    assert!(conv(1 << 15, 1 << 15, 1, 1, 0, 1, 1).is_err());
    assert!(message(conv(1, 1, 1, 1, 0, 1 << 15, 1 << 15).unwrap_err()).contains("too large"));
    // The column matrix of one image: 64 k^2 x positions elements.
    assert!(conv(64, 1, 64, 1, 40, 2048, 2048).is_err());

    let conv_t = |c_in, c_out, k, s, p, op, h, w| {
        let mut r = rng(1);
        ConvTranspose2d::new(c_in, c_out, k, s, p, op, h, w, Init::PyTorch, &mut r).map(|_| ())
    };
    assert!(conv_t(1, 1, 3, 2, 1, 1, 3, 3).is_ok());
    assert!(conv_t(0, 1, 3, 2, 1, 1, 3, 3).is_err());
    assert!(conv_t(1, 0, 3, 2, 1, 1, 3, 3).is_err());
    assert!(conv_t(1, 1, 0, 2, 1, 1, 3, 3).is_err());
    assert!(conv_t(1, 1, 3, 0, 1, 0, 3, 3).is_err());
    assert!(conv_t(1, 1, 3, 2, 1, 1, 0, 3).is_err());
    let e = message(conv_t(1, 1, 3, 2, 1, 2, 3, 3).unwrap_err());
    assert!(
        e.contains("output_padding 2 must be smaller than stride 2"),
        "{e}"
    );
    // (1 - 1) 1 - 2 + 1 + 0 = -1 and = 0.
    let e = message(conv_t(1, 1, 1, 1, 1, 0, 1, 1).unwrap_err());
    assert!(
        e.starts_with("invalid transposed conv2d layer: output size"),
        "{e}"
    );
    assert!(conv_t(1, 1, 2, 1, 1, 0, 1, 1).is_err());
    assert!(conv_t(1, 1, 3, 1, 1, 0, 1, 1).is_ok());
    assert!(conv_t(1, 1, usize::MAX, 1, 0, 0, 1, 1).is_err());
    assert!(conv_t(1, 1, 1, usize::MAX, 0, 0, 3, 3).is_err());
    assert!(conv_t(1, 1, 1, 1, usize::MAX, 0, 3, 3).is_err());
    assert!(conv_t(1 << 15, 1 << 15, 1, 1, 0, 0, 1, 1).is_err());
}

// ---- determinism ----

/// Conv(16->32, 4, s2, p1) 30 -> 15 then ConvT(32->16, 4, s2, p1) 15 -> 30 on a batch of 42:
/// several chunks (the last one partial), GEMM pieces and rayon tasks. Returns the outputs,
/// the input gradients and the parameter gradients accumulated over two passes.
fn conv_chain(threads: usize) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut r = rng(9);
        let batch = 42;
        let mut conv = Conv2d::new(16, 32, 4, 2, 1, 30, 30, Init::PyTorch, &mut r).unwrap();
        let mut conv_t =
            ConvTranspose2d::new(32, 16, 4, 2, 1, 0, 15, 15, Init::PyTorch, &mut r).unwrap();
        assert!(conv.chunk_images < batch && batch % conv.chunk_images != 0);
        assert!(conv_t.chunk_images < batch && batch % conv_t.chunk_images != 0);
        let mut out = Vec::new();
        for _ in 0..2 {
            let x = uniform(&mut r, batch * conv.input_len(), -1.0, 1.0);
            let h = conv.forward(&x, batch).to_vec();
            let y = conv_t.forward(&h, batch).to_vec();
            let dy: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
            let dh = conv_t.backward(&dy).to_vec();
            let dx = conv.backward(&dh).to_vec();
            out.extend([h, y, dh, dx]);
        }
        out.extend([
            conv.grad_weight,
            conv.grad_bias,
            conv_t.grad_weight,
            conv_t.grad_bias,
        ]);
        out
    })
}

#[test]
fn convolutions_are_bit_identical_for_any_thread_count() {
    let bits = |v: &[Vec<f32>]| -> Vec<u32> { v.iter().flatten().map(|x| x.to_bits()).collect() };
    let one = conv_chain(1);
    assert!(one.iter().flatten().all(|v| v.is_finite()));
    assert!(one.iter().all(|v| v.iter().any(|&x| x != 0.0)));
    assert_eq!(bits(&one), bits(&conv_chain(2)), "2 threads");
    assert_eq!(bits(&one), bits(&conv_chain(3)), "3 threads");
}
