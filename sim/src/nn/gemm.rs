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
