//! Causal attention against an independent `f64` reference and finite differences.

use super::*;
use crate::nn::tests::{check_grad, check_value, fd_grad, rng, uniform, wide};
use proptest::prelude::*;

/// o for `batch` sequences of packed [q | k | v] rows, written from the formula.
fn attention_ref(qkv: &[f64], batch: usize, seq: usize, width: usize, heads: usize) -> Vec<f64> {
    let dh = width / heads;
    let mut out = vec![0.0; batch * seq * width];
    let at = |b: usize, i: usize, part: usize, h: usize, e: usize| {
        qkv[(b * seq + i) * 3 * width + part * width + h * dh + e]
    };
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..seq {
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..dh)
                            .map(|e| at(b, i, 0, h, e) * at(b, j, 1, h, e))
                            .sum::<f64>()
                    })
                    .map(|s| s / (dh as f64).sqrt())
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
                for (j, &sj) in s.iter().enumerate() {
                    let p = (sj - max).exp() / z;
                    for e in 0..dh {
                        out[(b * seq + i) * width + h * dh + e] += p * at(b, j, 2, h, e);
                    }
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn attention_matches_reference_and_finite_differences(
        batch in 1usize..3,
        seq in 1usize..6,
        heads in 1usize..4,
        head_size in 1usize..11,
        seed: u64,
    ) {
        let width = heads * head_size;
        let mut r = rng(seed);
        let qkv = uniform(&mut r, batch * seq * 3 * width, -1.5, 1.5);
        let weights = wide(&uniform(&mut r, batch * seq * width, -1.0, 1.0));
        let mut attn = CausalAttention::new(width, heads);
        let out = attn.forward(&qkv, batch, seq).to_vec();
        check_value("o", &out, &attention_ref(&wide(&qkv), batch, seq, width, heads), 1e-5)?;
        let dout: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
        let analytic = attn.backward(&dout).to_vec();
        let loss = |x: &[f64]| -> f64 {
            attention_ref(x, batch, seq, width, heads).iter().zip(&weights).map(|(o, w)| o * w).sum()
        };
        check_grad("dqkv", &analytic, &fd_grad(loss, &wide(&qkv)))?;
    }
}

#[test]
fn attention_is_bit_identical_for_any_thread_count() {
    let (batch, seq, width, heads) = (5, 9, 24, 3);
    let mut r = rng(7);
    let qkv = uniform(&mut r, batch * seq * 3 * width, -2.0, 2.0);
    let dout = uniform(&mut r, batch * seq * width, -1.0, 1.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut attn = CausalAttention::new(width, heads);
            let o: Vec<u32> = attn
                .forward(&qkv, batch, seq)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let d: Vec<u32> = attn.backward(&dout).iter().map(|v| v.to_bits()).collect();
            (o, d)
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn the_first_position_attends_only_to_itself() {
    // Row 0's output is its own value vector whatever the others hold.
    let (width, heads) = (4, 2);
    let mut r = rng(3);
    let mut qkv = uniform(&mut r, 3 * 3 * width, -1.0, 1.0);
    let mut attn = CausalAttention::new(width, heads);
    let first = attn.forward(&qkv, 1, 3)[..width].to_vec();
    assert_eq!(first, qkv[2 * width..3 * width].to_vec());
    for v in &mut qkv[3 * width..] {
        *v += 10.0;
    }
    assert_eq!(attn.forward(&qkv, 1, 3)[..width].to_vec(), first);
}
