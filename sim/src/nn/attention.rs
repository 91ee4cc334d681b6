//! Causal multi-head self-attention on packed query/key/value rows.

use super::simd::vectorised;
use rayon::prelude::*;

vectorised! {
    /// `gemm::dot8` compiled for AVX2 when the CPU has it.
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::gemm::dot8(a, b)
    }
}

vectorised! {
    /// y += alpha x.
    fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        let x = &x[..y.len()];
        for (y, &x) in y.iter_mut().zip(x) {
            *y += alpha * x;
        }
    }
}

/// One query row of one head: `scores[j] = softmax_j(scale q . k_j)` over the `len` keys
/// `keys[j * stride..][..q.len()]`, and `out = sum_j scores[j] v_j` (values likewise).
/// Shared by training and by cached decoding, so both compute the same bits.
#[allow(clippy::too_many_arguments)]
pub fn attend_row(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    len: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let dh = q.len();
    let mut max = f32::NEG_INFINITY;
    for j in 0..len {
        let s = scale * dot(q, &keys[j * stride..j * stride + dh]);
        scores[j] = s;
        max = max.max(s);
    }
    let mut sum = 0.0f32;
    for s in &mut scores[..len] {
        *s = super::simd::exp(*s - max);
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for j in 0..len {
        scores[j] *= inv;
        axpy(scores[j], &values[j * stride..j * stride + dh], out);
    }
}

/// The attention core of a transformer block: for `batch` sequences of `seq` rows of packed
/// `[q | k | v]` (each `width` wide, split into `heads` heads of `width / heads`), head h of
/// row i attends to rows 0..=i:
///
/// o_i = sum_{j <= i} p_ij v_j,  p_ij = softmax_j(q_i . k_j / sqrt(d_h)).
///
/// Backward: dv_j += p_ij do_i, dp_ij = do_i . v_j, ds_ij = p_ij (dp_ij - sum_j p_ij dp_ij),
/// dq_i = sum_j ds_ij k_j / sqrt(d_h), dk_j += ds_ij q_i / sqrt(d_h). Sequences are computed in
/// parallel, each by one thread in a fixed order: the same bits for any thread count.
#[derive(Debug, Clone)]
pub struct CausalAttention {
    width: usize,
    heads: usize,
    batch: usize,
    seq: usize,
    qkv: Vec<f32>,
    /// p, per sequence and head, `seq x seq` (upper triangle unused).
    probs: Vec<f32>,
    out: Vec<f32>,
    dqkv: Vec<f32>,
}

impl CausalAttention {
    /// Panics unless `heads` divides `width` (the model checks its configuration).
    pub fn new(width: usize, heads: usize) -> CausalAttention {
        assert!(heads > 0 && width > 0 && width.is_multiple_of(heads));
        CausalAttention {
            width,
            heads,
            batch: 0,
            seq: 0,
            qkv: Vec::new(),
            probs: Vec::new(),
            out: Vec::new(),
            dqkv: Vec::new(),
        }
    }

    fn head_size(&self) -> usize {
        self.width / self.heads
    }

    /// 1 / sqrt(d_h).
    pub fn scale(&self) -> f32 {
        (1.0 / (self.head_size() as f64).sqrt()) as f32
    }

    /// The attention output (`batch * seq x width`) of packed `qkv` (`batch * seq x 3 width`).
    pub fn forward(&mut self, qkv: &[f32], batch: usize, seq: usize) -> &[f32] {
        let (w, heads, dh) = (self.width, self.heads, self.head_size());
        assert_eq!(
            qkv.len(),
            batch * seq * 3 * w,
            "qkv is not batch x seq x 3 width"
        );
        let scale = self.scale();
        self.batch = batch;
        self.seq = seq;
        self.qkv.clear();
        self.qkv.extend_from_slice(qkv);
        self.probs.resize(batch * heads * seq * seq, 0.0);
        self.out.resize(batch * seq * w, 0.0);
        self.out
            .par_chunks_mut(seq * w)
            .zip(self.probs.par_chunks_mut(heads * seq * seq))
            .zip(qkv.par_chunks(seq * 3 * w))
            .for_each(|((out, probs), x)| {
                for h in 0..heads {
                    for i in 0..seq {
                        let q = &x[i * 3 * w + h * dh..][..dh];
                        attend_row(
                            q,
                            &x[w + h * dh..],
                            &x[2 * w + h * dh..],
                            3 * w,
                            i + 1,
                            scale,
                            &mut probs[(h * seq + i) * seq..][..seq],
                            &mut out[i * w + h * dh..][..dh],
                        );
                    }
                }
            });
        &self.out
    }

    /// dL/dqkv from dL/do of the last forward.
    pub fn backward(&mut self, dout: &[f32]) -> &[f32] {
        let (w, heads, dh, seq) = (self.width, self.heads, self.head_size(), self.seq);
        assert_eq!(
            dout.len(),
            self.batch * seq * w,
            "dout is not batch x seq x width"
        );
        let scale = self.scale();
        self.dqkv.resize(self.batch * seq * 3 * w, 0.0);
        self.dqkv
            .par_chunks_mut(seq * 3 * w)
            .zip(self.probs.par_chunks(heads * seq * seq))
            .zip(
                self.qkv
                    .par_chunks(seq * 3 * w)
                    .zip(dout.par_chunks(seq * w)),
            )
            .for_each(|((dx, probs), (x, dout))| {
                dx.fill(0.0);
                let mut ds = vec![0.0f32; seq];
                for h in 0..heads {
                    let (qo, ko, vo) = (h * dh, w + h * dh, 2 * w + h * dh);
                    for i in 0..seq {
                        let p = &probs[(h * seq + i) * seq..][..i + 1];
                        let d_o = &dout[i * w + h * dh..][..dh];
                        let mut weighted = 0.0f32;
                        for j in 0..=i {
                            let dp = dot(d_o, &x[j * 3 * w + vo..][..dh]);
                            ds[j] = dp;
                            weighted += p[j] * dp;
                        }
                        for j in 0..=i {
                            ds[j] = p[j] * (ds[j] - weighted) * scale;
                        }
                        for j in 0..=i {
                            axpy(p[j], d_o, &mut dx[j * 3 * w + vo..][..dh]);
                            let (q, k) = (i * 3 * w + qo, j * 3 * w + ko);
                            let dq_ij = ds[j];
                            axpy(dq_ij, &x[q..q + dh], &mut dx[k..k + dh]);
                        }
                        let dq = &mut dx[i * 3 * w + qo..][..dh];
                        for j in 0..=i {
                            axpy(ds[j], &x[j * 3 * w + ko..][..dh], dq);
                        }
                    }
                }
            });
        &self.dqkv
    }
}

#[cfg(test)]
mod tests;
