//! Matrix products on `matrixmultiply::sgemm`, cut into pieces for rayon.

use matrixmultiply::sgemm;
use rayon::prelude::*;

/// A read-only strided matrix view: element (i, j) is `data[i * rs + j * cs]`. A row-major
/// `rows x cols` matrix has `rs = cols, cs = 1`; its transpose is the same data with the
/// strides swapped.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view exceeds its data");
        }
    }
}

/// Rows or columns of C per parallel piece. Pieces cut the larger of C's two dimensions, so
/// that the operand re-packed by every piece is the smaller one; the cut depends only on the
/// shapes, so each element of C is computed by the same `sgemm` call for any thread count.
const GEMM_PIECE: usize = 256;

struct SendPtr(*mut f32);
// SAFETY: pieces write disjoint parts of C through the pointer.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// C <- A B + beta C for A (m x k), B (k x n) and C row-major `m x n` with row stride `ldc`
/// (beta = 0: C's previous contents are ignored, even NaN). Panics if shapes do not agree.
pub fn gemm(a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert!(ldc >= n, "row stride of C below its width");
    a.check();
    b.check();
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c.len(), "C is too small");
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    let pieces = len.div_ceil(GEMM_PIECE);
    let c_ptr = SendPtr(c.as_mut_ptr());
    let piece = |p: usize| {
        let start = p * GEMM_PIECE;
        let size = GEMM_PIECE.min(len - start);
        let (pm, pn, a_off, b_off, c_off) = if split_rows {
            (size, n, start * a.rs, 0, start * ldc)
        } else {
            (m, size, 0, start * b.cs, start)
        };
        // SAFETY: the views were bounds-checked above and this piece's offsets stay inside
        // them; pieces write disjoint rows or columns of C.
        unsafe {
            sgemm(
                pm,
                k,
                pn,
                1.0,
                a.data.as_ptr().add(a_off),
                a.rs as isize,
                a.cs as isize,
                b.data.as_ptr().add(b_off),
                b.rs as isize,
                b.cs as isize,
                beta,
                c_ptr.get().add(c_off),
                ldc as isize,
                1,
            );
        }
    };
    if pieces == 1 {
        piece(0);
    } else {
        (0..pieces).into_par_iter().for_each(piece);
    }
}

/// sum_i a_i b_i with eight partial sums in a fixed order (vectorises; the same bits on
/// every path).
#[inline(always)]
pub(super) fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// y[r][o] += x_r . w_o, portably, one `dot8` per pair.
fn few_rows_portable(x: &[f32], inputs: usize, weight: &[f32], y: &mut [f32], outputs: usize) {
    for (xr, yr) in x.chunks_exact(inputs).zip(y.chunks_exact_mut(outputs)) {
        for (yo, w) in yr.iter_mut().zip(weight.chunks_exact(inputs)) {
            *yo += dot8(xr, w);
        }
    }
}

/// `few_rows_portable` on AVX2, four outputs at a time so that each chunk of x is loaded once
/// for them: the same lanes, chunk order and reduction as `dot8` (multiply, then add: no fused
/// multiply-add), hence the same bits.
///
/// # Safety
/// The CPU must have AVX2; `x` holds whole rows of `inputs`, `weight` `outputs` of them and
/// `y` one row of `outputs` per row of x.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn few_rows_avx2(x: &[f32], inputs: usize, weight: &[f32], y: &mut [f32], outputs: usize) {
    use std::arch::x86_64::*;
    let rows = x.len() / inputs;
    assert!(weight.len() >= outputs * inputs && y.len() >= rows * outputs);
    let chunks = inputs / 8;
    let blocked = outputs / 4 * 4;
    let reduce = |a: __m256, xr: &[f32], w: &[f32]| -> f32 {
        let mut l = [0.0f32; 8];
        // SAFETY: l holds 8 floats.
        unsafe { _mm256_storeu_ps(l.as_mut_ptr(), a) };
        let mut tail = 0.0;
        for i in chunks * 8..inputs {
            tail += xr[i] * w[i];
        }
        ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])) + tail
    };
    for o in (0..blocked).step_by(4) {
        let w = &weight[o * inputs..(o + 4) * inputs];
        for r in 0..rows {
            let xr = &x[r * inputs..(r + 1) * inputs];
            // SAFETY: every load reads 8 floats inside xr or w (c < chunks, k < 4).
            let acc = unsafe {
                let (xp, wp) = (xr.as_ptr(), w.as_ptr());
                let mut a = [_mm256_setzero_ps(); 4];
                for c in 0..chunks {
                    let xv = _mm256_loadu_ps(xp.add(c * 8));
                    for (k, a) in a.iter_mut().enumerate() {
                        let wv = _mm256_loadu_ps(wp.add(k * inputs + c * 8));
                        *a = _mm256_add_ps(*a, _mm256_mul_ps(xv, wv));
                    }
                }
                a
            };
            for (k, &a) in acc.iter().enumerate() {
                y[r * outputs + o + k] += reduce(a, xr, &w[k * inputs..(k + 1) * inputs]);
            }
        }
    }
    for o in blocked..outputs {
        let w = &weight[o * inputs..(o + 1) * inputs];
        for r in 0..rows {
            y[r * outputs + o] += dot8(&x[r * inputs..(r + 1) * inputs], w);
        }
    }
}

fn few_rows_kernel(x: &[f32], inputs: usize, weight: &[f32], y: &mut [f32], outputs: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::avx2::available() {
        // SAFETY: the CPU has AVX2 (checked at run time); the slices' shapes are the caller's.
        return unsafe { few_rows_avx2(x, inputs, weight, y, outputs) };
    }
    few_rows_portable(x, inputs, weight, y, outputs);
}

/// y = x W^T + b for a few rows x (`rows x inputs`) and W `outputs x inputs` (row-major;
/// b = None: no bias), reading each row of W once for all rows. For decoding one token per
/// sequence, where packing W for [`gemm`] costs more than the product itself. One thread.
pub fn few_rows_dense(
    x: &[f32],
    rows: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    inputs: usize,
    y: &mut [f32],
) {
    assert!(
        inputs > 0 && weight.len().is_multiple_of(inputs),
        "weight is not outputs x inputs"
    );
    let outputs = weight.len() / inputs;
    let (x, y) = (&x[..rows * inputs], &mut y[..rows * outputs]);
    for row in y.chunks_exact_mut(outputs) {
        match bias {
            Some(b) => row.copy_from_slice(b),
            None => row.fill(0.0),
        }
    }
    few_rows_kernel(x, inputs, weight, y, outputs);
}
