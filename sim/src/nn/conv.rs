//! 2-D convolution and transposed convolution (PyTorch's `Conv2d` and `ConvTranspose2d`, NCHW),
//! as im2col + GEMM.
//!
//! Both layers share one geometry: a convolution reading an *image* of `c x h x w` at
//! `oh x ow` *positions*. `im2col` lays the receptive fields out as a matrix of
//! `c k k` rows by positions (image after image); its adjoint `col2im` adds such a matrix back
//! into images. A convolution is y = W im2col(x) + b; its input gradient is col2im(W^T dy).
//! A transposed convolution is that input gradient: y = col2im(W^T x) + b, and its input
//! gradient is the convolution W im2col(dy).
//!
//! The batch is processed in chunks of images whose `col` matrix has about `COL_CHUNK`
//! elements (a few large products whose operands stay in cache, and no whole-batch `col`
//! buffer); weight gradients add chunk after chunk. Chunks, GEMM pieces and the rows or images
//! each rayon task handles depend only on the shapes, so results do not depend on the number
//! of threads.

use super::dense::{Init, initialise};
use super::gemm::{MatRef, gemm};
use crate::SimError;
use crate::rng::ChainRng;
use rayon::prelude::*;

/// Target elements of a chunk's `col` matrix (1 MiB of `f32`, kept in cache between im2col
/// and the products: on the paper's shapes chunks of 0.5 to 2 MiB ran fastest, whole batches
/// up to 30% slower).
const COL_CHUNK: usize = 1 << 18;

/// Largest weight tensor, image, output or per-image `col` matrix accepted (elements).
const MAX_ELEMENTS: usize = 1 << 28;

/// A convolution reading a `channels x height x width` image with a `kernel x kernel` window
/// moved by `stride` over the image zero-padded by `padding` on each side, at
/// `out_height x out_width` positions.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    out_height: usize,
    out_width: usize,
}

impl Geometry {
    /// Rows of `col`: c k k, ordered (channel, kernel row, kernel column) like PyTorch's weights.
    fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Images per chunk: as many as fit `COL_CHUNK`, at least one.
    fn chunk_images(&self) -> usize {
        (COL_CHUNK / (self.rows() * self.positions())).max(1)
    }

    /// Row length and size of an image plane with its zero padding.
    fn padded_plane(&self) -> (usize, usize) {
        let wp = self.width + 2 * self.padding;
        (wp, (self.height + 2 * self.padding) * wp)
    }

    /// Copies image planes into `padded` with zero borders, so that `im2col` needs no bounds
    /// tests; one plane per task.
    fn pad(&self, images: &[f32], padded: &mut [f32]) {
        let (h, w, p) = (self.height, self.width, self.padding);
        let (wp, plane) = self.padded_plane();
        padded
            .par_chunks_mut(plane)
            .zip(images.par_chunks(h * w))
            .for_each(|(dst, src)| {
                let (top, rest) = dst.split_at_mut(p * wp);
                let (inner, bottom) = rest.split_at_mut(h * wp);
                top.fill(0.0);
                bottom.fill(0.0);
                for (d, s) in inner.chunks_exact_mut(wp).zip(src.chunks_exact(w)) {
                    d[..p].fill(0.0);
                    d[p..p + w].copy_from_slice(s);
                    d[p + w..].fill(0.0);
                }
            });
    }

    /// `col[(c, ki, kj), (n, oy, ox)] = padded_n[c, oy s + ki, ox s + kj]`, i.e. the image at
    /// `(oy s + ki - p, ox s + kj - p)` or zero in the padding, for the images of `padded`
    /// (from `pad`); one row per task.
    fn im2col(&self, padded: &[f32], col: &mut [f32]) {
        let (k, s, oh, ow) = (self.kernel, self.stride, self.out_height, self.out_width);
        let (wp, plane) = self.padded_plane();
        let positions = self.positions();
        let ld = col.len() / self.rows();
        debug_assert_eq!(padded.len() / plane * positions, ld * self.channels);
        col.par_chunks_mut(ld).enumerate().for_each(|(r, row)| {
            let (c, ki, kj) = (r / (k * k), r / k % k, r % k);
            // Index arithmetic rather than `step_by` or `chunks` with a run-time step, which
            // divide on every (short) row: that dominated the time.
            let mut o = 0;
            for n in 0..row.len() / positions {
                let base = (n * self.channels + c) * plane + ki * wp + kj;
                for oy in 0..oh {
                    let mut i = base + oy * s * wp;
                    for out in &mut row[o..o + ow] {
                        *out = padded[i];
                        i += s;
                    }
                    o += ow;
                }
            }
        });
    }

    /// The adjoint of `im2col` (of `pad` then `im2col`): image plane (n, c) is the sum of
    /// `col[(c, ki, kj), (n, oy, ox)]` over the terms landing at `(oy s + ki - p, ox s + kj - p)`
    /// inside the image, plus `bias[c]` if given. Sums are taken in a fixed order in a padded
    /// plane of the scratch `padded`; one plane per task.
    fn col2im(&self, col: &[f32], bias: Option<&[f32]>, padded: &mut [f32], images: &mut [f32]) {
        let (k, s, oh, ow) = (self.kernel, self.stride, self.out_height, self.out_width);
        let positions = self.positions();
        let (h, w, p) = (self.height, self.width, self.padding);
        let (wp, plane) = self.padded_plane();
        let ld = col.len() / self.rows();
        debug_assert_eq!(images.len() / (h * w) * positions, ld * self.channels);
        padded
            .par_chunks_mut(plane)
            .zip(images.par_chunks_mut(h * w))
            .enumerate()
            .for_each(|(plane_index, (sums, out))| {
                let (n, c) = (plane_index / self.channels, plane_index % self.channels);
                sums.fill(0.0);
                for ki in 0..k {
                    for kj in 0..k {
                        let r = (c * k + ki) * k + kj;
                        let src = &col[r * ld + n * positions..][..positions];
                        for oy in 0..oh {
                            let mut i = (oy * s + ki) * wp + kj;
                            for &v in &src[oy * ow..(oy + 1) * ow] {
                                sums[i] += v;
                                i += s;
                            }
                        }
                    }
                }
                let inner = sums[p * wp..].chunks_exact(wp);
                for (o, row) in out.chunks_exact_mut(w).zip(inner) {
                    let row = &row[p..p + w];
                    match bias {
                        Some(b) => {
                            for (o, &v) in o.iter_mut().zip(row) {
                                *o = v + b[c];
                            }
                        }
                        None => o.copy_from_slice(row),
                    }
                }
            });
    }
}

/// `dst[c, (n, q)] = src[n, c, q]`: images `channels x plane` to a `channels x (n plane)`
/// matrix; one row per task.
fn gather(src: &[f32], channels: usize, plane: usize, dst: &mut [f32]) {
    let ld = dst.len() / channels;
    dst.par_chunks_mut(ld).enumerate().for_each(|(c, row)| {
        for (n, out) in row.chunks_exact_mut(plane).enumerate() {
            out.copy_from_slice(&src[(n * channels + c) * plane..][..plane]);
        }
    });
}

/// The inverse of `gather`, adding `bias[c]` if given; one image per task.
fn scatter(src: &[f32], channels: usize, plane: usize, bias: Option<&[f32]>, dst: &mut [f32]) {
    let ld = src.len() / channels;
    dst.par_chunks_mut(channels * plane)
        .enumerate()
        .for_each(|(n, image)| {
            for (c, out) in image.chunks_exact_mut(plane).enumerate() {
                let src = &src[c * ld + n * plane..][..plane];
                match bias {
                    Some(b) => {
                        for (o, &v) in out.iter_mut().zip(src) {
                            *o = v + b[c];
                        }
                    }
                    None => out.copy_from_slice(src),
                }
            }
        });
}

/// Lanes of the bias-gradient sums (independent accumulators that vectorise).
const LANES: usize = 16;

/// `grad[c] += sum over n, q of dy[n, c, q]`, each sum in a fixed order (element i of a plane
/// into lane i mod LANES, lanes added pairwise); one channel per task.
fn channel_sums_add(dy: &[f32], plane: usize, grad: &mut [f32]) {
    let channels = grad.len();
    grad.par_iter_mut().enumerate().for_each(|(c, g)| {
        let mut acc = [0.0f32; LANES];
        for image in dy.chunks_exact(channels * plane) {
            let src = &image[c * plane..][..plane];
            let mut chunks = src.chunks_exact(LANES);
            for chunk in &mut chunks {
                for (a, &v) in acc.iter_mut().zip(chunk) {
                    *a += v;
                }
            }
            for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
                *a += v;
            }
        }
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                acc[i] += acc[i + width];
            }
        }
        *g += acc[0];
    });
}

/// The product of `factors`, if it is at most `MAX_ELEMENTS`.
fn bounded(factors: &[usize]) -> Option<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .filter(|&n| n <= MAX_ELEMENTS)
}

/// The arguments shared by both constructors, checked.
fn check_common(
    what: &'static str,
    sizes: [(&str, usize); 6],
    padding: usize,
) -> Result<(), SimError> {
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(SimError::Invalid {
            what,
            why: format!("{name} must be positive, got 0"),
        });
    }
    // Bounding every size first keeps the shape arithmetic below far from overflow.
    let mut all = sizes.into_iter().chain([("padding", padding)]);
    if let Some((name, value)) = all.find(|&(_, v)| v > MAX_ELEMENTS) {
        return Err(SimError::Invalid {
            what,
            why: format!("{name} {value} is too large (at most {MAX_ELEMENTS})"),
        });
    }
    Ok(())
}

/// A 2-D convolution (PyTorch's `Conv2d`, no dilation or groups):
/// y[n, o, i, j] = b[o] + sum over c, u, v of W[o, c, u, v] x[n, c, i s + u - p, j s + v - p]
/// (x zero outside the image), for x of `batch x in_c x in_h x in_w`, W of
/// `out_c x in_c x k x k` and y of `batch x out_c x out_h x out_w`, with
/// out_h = (in_h + 2p - k) / s + 1 (rounded down), likewise out_w.
#[derive(Debug, Clone)]
pub struct Conv2d {
    geometry: Geometry,
    out_channels: usize,
    chunk_images: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// dL/dW, accumulated by every backward pass until `zero_grad`.
    pub grad_weight: Vec<f32>,
    /// dL/db, accumulated likewise.
    pub grad_bias: Vec<f32>,
    batch: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    /// A chunk's im2col(x), or W^T dy.
    col: Vec<f32>,
    /// A chunk's y or dy as `out_c x (images positions)`.
    out_cols: Vec<f32>,
    /// A chunk's x, or dL/dx sums, as zero-padded planes.
    padded: Vec<f32>,
}

impl Conv2d {
    /// A layer for `in_channels x in_height x in_width` images, initialised by `init` from
    /// `rng` with fan_in = in_c k k, fan_out = out_c k k (PyTorch's).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        in_height: usize,
        in_width: usize,
        init: Init,
        rng: &mut ChainRng,
    ) -> Result<Conv2d, SimError> {
        const WHAT: &str = "conv2d layer";
        check_common(
            WHAT,
            [
                ("in_channels", in_channels),
                ("out_channels", out_channels),
                ("kernel", kernel),
                ("stride", stride),
                ("in_height", in_height),
                ("in_width", in_width),
            ],
            padding,
        )?;
        let side = |size: usize| {
            size.checked_add(2 * padding)
                .and_then(|v| v.checked_sub(kernel))
                .map(|d| d / stride + 1)
        };
        let (Some(out_height), Some(out_width)) = (side(in_height), side(in_width)) else {
            return Err(SimError::Invalid {
                what: WHAT,
                why: format!(
                    "kernel {kernel} is larger than the padded input \
                     {in_height} x {in_width} + 2 x {padding}"
                ),
            });
        };
        let geometry = Geometry {
            channels: in_channels,
            height: in_height,
            width: in_width,
            kernel,
            stride,
            padding,
            out_height,
            out_width,
        };
        let k2 = kernel * kernel;
        if bounded(&[out_channels, in_channels, kernel, kernel]).is_none()
            || bounded(&[in_channels, in_height, in_width]).is_none()
            || bounded(&[out_channels, out_height, out_width]).is_none()
            || bounded(&[in_channels, kernel, kernel, out_height, out_width]).is_none()
        {
            return Err(SimError::Invalid {
                what: WHAT,
                why: format!(
                    "too large: {in_channels} -> {out_channels} channels, kernel {kernel}, \
                     input {in_height} x {in_width}, output {out_height} x {out_width} \
                     (at most {MAX_ELEMENTS} elements per tensor)"
                ),
            });
        }
        let (weight, bias) = initialise(
            out_channels * in_channels * k2,
            out_channels,
            in_channels * k2,
            out_channels * k2,
            init,
            rng,
        );
        Ok(Conv2d {
            geometry,
            out_channels,
            chunk_images: geometry.chunk_images(),
            grad_weight: vec![0.0; weight.len()],
            grad_bias: vec![0.0; out_channels],
            weight,
            bias,
            batch: 0,
            x: Vec::new(),
            y: Vec::new(),
            dx: Vec::new(),
            col: Vec::new(),
            out_cols: Vec::new(),
            padded: Vec::new(),
        })
    }

    /// Elements of one input image: in_c in_h in_w.
    pub fn input_len(&self) -> usize {
        self.geometry.image_len()
    }

    /// (out_c, out_h, out_w).
    pub fn output_shape(&self) -> (usize, usize, usize) {
        let g = &self.geometry;
        (self.out_channels, g.out_height, g.out_width)
    }

    /// Elements of one output image: out_c out_h out_w.
    pub fn output_len(&self) -> usize {
        self.out_channels * self.geometry.positions()
    }

    /// Trainable parameters: out_c in_c k k + out_c.
    pub fn parameters(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    /// The chunks of the batch, as (first image, images).
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (batch, size) = (self.batch, self.chunk_images);
        (0..batch)
            .step_by(size)
            .map(move |n| (n, size.min(batch - n)))
    }

    /// Sizes the chunk buffers for the current batch (no allocation once it is fixed).
    fn size_buffers(&mut self) {
        let images = self.chunk_images.min(self.batch);
        let cols = images * self.geometry.positions();
        self.col.resize(self.geometry.rows() * cols, 0.0);
        self.out_cols.resize(self.out_channels * cols, 0.0);
        let planes = images * self.geometry.channels;
        self.padded
            .resize(planes * self.geometry.padded_plane().1, 0.0);
    }

    /// y = W im2col(x) + b for `batch` images x; caches x for the backward pass.
    pub fn forward(&mut self, x: &[f32], batch: usize) -> &[f32] {
        assert_eq!(
            Some(x.len()),
            batch.checked_mul(self.input_len()),
            "input is not batch x in_c x in_h x in_w"
        );
        self.batch = batch;
        self.x.clear();
        self.x.extend_from_slice(x);
        self.y.resize(batch * self.output_len(), 0.0);
        self.size_buffers();
        let g = self.geometry;
        let (rows, positions) = (g.rows(), g.positions());
        for (n, images) in self.chunks() {
            let cols = images * positions;
            let col = &mut self.col[..rows * cols];
            let out_cols = &mut self.out_cols[..self.out_channels * cols];
            let padded = &mut self.padded[..images * g.channels * g.padded_plane().1];
            g.pad(&x[n * g.image_len()..][..images * g.image_len()], padded);
            g.im2col(padded, col);
            gemm(
                MatRef::row_major(&self.weight, self.out_channels, rows),
                MatRef::row_major(col, rows, cols),
                0.0,
                out_cols,
                cols,
            );
            let y = &mut self.y[n * self.out_channels * positions..][..self.out_channels * cols];
            scatter(out_cols, self.out_channels, positions, Some(&self.bias), y);
        }
        &self.y
    }

    /// Adds dL/dW += sum over images of dy im2col(x)^T and dL/db += sums of dy over images
    /// and positions, for dy = dL/dy of the last forward; computes no dL/dx (for a first
    /// layer, whose input is data).
    pub fn backward_params(&mut self, dy: &[f32]) {
        self.backward_impl(dy, false);
    }

    /// `backward_params`, then returns dL/dx = col2im(W^T dy).
    pub fn backward(&mut self, dy: &[f32]) -> &[f32] {
        self.backward_impl(dy, true);
        &self.dx
    }

    fn backward_impl(&mut self, dy: &[f32], input_grad: bool) {
        assert_eq!(
            dy.len(),
            self.batch * self.output_len(),
            "dy is not batch x out_c x out_h x out_w"
        );
        let g = self.geometry;
        let (rows, positions, out_c) = (g.rows(), g.positions(), self.out_channels);
        channel_sums_add(dy, positions, &mut self.grad_bias);
        if input_grad {
            self.dx.resize(self.batch * g.image_len(), 0.0);
        }
        self.size_buffers();
        for (n, images) in self.chunks() {
            let cols = images * positions;
            let col = &mut self.col[..rows * cols];
            let out_cols = &mut self.out_cols[..out_c * cols];
            let padded = &mut self.padded[..images * g.channels * g.padded_plane().1];
            g.pad(
                &self.x[n * g.image_len()..][..images * g.image_len()],
                padded,
            );
            g.im2col(padded, col);
            gather(
                &dy[n * out_c * positions..][..out_c * cols],
                out_c,
                positions,
                out_cols,
            );
            gemm(
                MatRef::row_major(out_cols, out_c, cols),
                MatRef::row_major(col, rows, cols).t(),
                1.0,
                &mut self.grad_weight,
                rows,
            );
            if input_grad {
                gemm(
                    MatRef::row_major(&self.weight, out_c, rows).t(),
                    MatRef::row_major(out_cols, out_c, cols),
                    0.0,
                    col,
                    cols,
                );
                let dx = &mut self.dx[n * g.image_len()..][..images * g.image_len()];
                g.col2im(col, None, padded, dx);
            }
        }
    }

    pub fn zero_grad(&mut self) {
        self.grad_weight.fill(0.0);
        self.grad_bias.fill(0.0);
    }

    /// The parameters with their gradients, for `Adam::step`.
    pub fn params_and_grads(&mut self) -> [(&mut [f32], &[f32]); 2] {
        [
            (&mut self.weight, &self.grad_weight),
            (&mut self.bias, &self.grad_bias),
        ]
    }
}

/// A 2-D transposed convolution (PyTorch's `ConvTranspose2d`, no dilation or groups), the
/// adjoint of `Conv2d` plus a bias:
/// y[n, o, i s + u - p, j s + v - p] += W[c, o, u, v] x[n, c, i, j] summed over c, i, j, u, v
/// (terms outside the output dropped), plus b[o], for x of `batch x in_c x in_h x in_w`, W of
/// `in_c x out_c x k x k` (PyTorch's layout) and y of `batch x out_c x out_h x out_w`, with
/// out_h = (in_h - 1) s - 2p + k + output_padding, likewise out_w.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    /// The convolution whose adjoint this is: its image is this layer's output, its positions
    /// this layer's input.
    geometry: Geometry,
    in_channels: usize,
    chunk_images: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// dL/dW, accumulated by every backward pass until `zero_grad`.
    pub grad_weight: Vec<f32>,
    /// dL/db, accumulated likewise.
    pub grad_bias: Vec<f32>,
    batch: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    /// A chunk's W^T x, or im2col(dy).
    col: Vec<f32>,
    /// A chunk's x or dx as `in_c x (images positions)`.
    in_cols: Vec<f32>,
    /// A chunk's dy, or y sums, as zero-padded planes.
    padded: Vec<f32>,
}

impl ConvTranspose2d {
    /// A layer for `in_channels x in_height x in_width` inputs, initialised by `init` from
    /// `rng` with fan_in = out_c k k, fan_out = in_c k k (PyTorch's, from W's dimensions
    /// 1 and 0).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        in_height: usize,
        in_width: usize,
        init: Init,
        rng: &mut ChainRng,
    ) -> Result<ConvTranspose2d, SimError> {
        const WHAT: &str = "transposed conv2d layer";
        check_common(
            WHAT,
            [
                ("in_channels", in_channels),
                ("out_channels", out_channels),
                ("kernel", kernel),
                ("stride", stride),
                ("in_height", in_height),
                ("in_width", in_width),
            ],
            padding,
        )?;
        if output_padding >= stride {
            return Err(SimError::Invalid {
                what: WHAT,
                why: format!(
                    "output_padding {output_padding} must be smaller than stride {stride}"
                ),
            });
        }
        let side = |size: usize| {
            (size - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(kernel))
                .and_then(|v| v.checked_add(output_padding))
                .and_then(|v| v.checked_sub(2 * padding))
                .filter(|&v| v > 0)
        };
        let (Some(out_height), Some(out_width)) = (side(in_height), side(in_width)) else {
            return Err(SimError::Invalid {
                what: WHAT,
                why: format!(
                    "output size (in - 1) x {stride} - 2 x {padding} + {kernel} + \
                     {output_padding} is not positive for input {in_height} x {in_width}"
                ),
            });
        };
        let geometry = Geometry {
            channels: out_channels,
            height: out_height,
            width: out_width,
            kernel,
            stride,
            padding,
            out_height: in_height,
            out_width: in_width,
        };
        let k2 = kernel * kernel;
        if bounded(&[in_channels, out_channels, kernel, kernel]).is_none()
            || bounded(&[in_channels, in_height, in_width]).is_none()
            || bounded(&[out_channels, out_height, out_width]).is_none()
            || bounded(&[out_channels, kernel, kernel, in_height, in_width]).is_none()
        {
            return Err(SimError::Invalid {
                what: WHAT,
                why: format!(
                    "too large: {in_channels} -> {out_channels} channels, kernel {kernel}, \
                     input {in_height} x {in_width}, output {out_height} x {out_width} \
                     (at most {MAX_ELEMENTS} elements per tensor)"
                ),
            });
        }
        let (weight, bias) = initialise(
            in_channels * out_channels * k2,
            out_channels,
            out_channels * k2,
            in_channels * k2,
            init,
            rng,
        );
        Ok(ConvTranspose2d {
            geometry,
            in_channels,
            chunk_images: geometry.chunk_images(),
            grad_weight: vec![0.0; weight.len()],
            grad_bias: vec![0.0; out_channels],
            weight,
            bias,
            batch: 0,
            x: Vec::new(),
            y: Vec::new(),
            dx: Vec::new(),
            col: Vec::new(),
            in_cols: Vec::new(),
            padded: Vec::new(),
        })
    }

    /// Elements of one input image: in_c in_h in_w.
    pub fn input_len(&self) -> usize {
        self.in_channels * self.geometry.positions()
    }

    /// (out_c, out_h, out_w).
    pub fn output_shape(&self) -> (usize, usize, usize) {
        let g = &self.geometry;
        (g.channels, g.height, g.width)
    }

    /// Elements of one output image: out_c out_h out_w.
    pub fn output_len(&self) -> usize {
        self.geometry.image_len()
    }

    /// Trainable parameters: in_c out_c k k + out_c.
    pub fn parameters(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    /// The chunks of the batch, as (first image, images).
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (batch, size) = (self.batch, self.chunk_images);
        (0..batch)
            .step_by(size)
            .map(move |n| (n, size.min(batch - n)))
    }

    /// Sizes the chunk buffers for the current batch (no allocation once it is fixed).
    fn size_buffers(&mut self) {
        let images = self.chunk_images.min(self.batch);
        let cols = images * self.geometry.positions();
        self.col.resize(self.geometry.rows() * cols, 0.0);
        self.in_cols.resize(self.in_channels * cols, 0.0);
        let planes = images * self.geometry.channels;
        self.padded
            .resize(planes * self.geometry.padded_plane().1, 0.0);
    }

    /// y = col2im(W^T x) + b for `batch` images x; caches x for the backward pass.
    pub fn forward(&mut self, x: &[f32], batch: usize) -> &[f32] {
        assert_eq!(
            Some(x.len()),
            batch.checked_mul(self.input_len()),
            "input is not batch x in_c x in_h x in_w"
        );
        self.batch = batch;
        self.x.clear();
        self.x.extend_from_slice(x);
        self.y.resize(batch * self.output_len(), 0.0);
        self.size_buffers();
        let g = self.geometry;
        let (rows, positions, in_c) = (g.rows(), g.positions(), self.in_channels);
        for (n, images) in self.chunks() {
            let cols = images * positions;
            let col = &mut self.col[..rows * cols];
            let in_cols = &mut self.in_cols[..in_c * cols];
            gather(
                &x[n * in_c * positions..][..in_c * cols],
                in_c,
                positions,
                in_cols,
            );
            gemm(
                MatRef::row_major(&self.weight, in_c, rows).t(),
                MatRef::row_major(in_cols, in_c, cols),
                0.0,
                col,
                cols,
            );
            let y = &mut self.y[n * g.image_len()..][..images * g.image_len()];
            let padded = &mut self.padded[..images * g.channels * g.padded_plane().1];
            g.col2im(col, Some(&self.bias), padded, y);
        }
        &self.y
    }

    /// Adds dL/dW += sum over images of x im2col(dy)^T and dL/db += sums of dy over images
    /// and positions, for dy = dL/dy of the last forward; computes no dL/dx.
    pub fn backward_params(&mut self, dy: &[f32]) {
        self.backward_impl(dy, false);
    }

    /// `backward_params`, then returns dL/dx = W im2col(dy).
    pub fn backward(&mut self, dy: &[f32]) -> &[f32] {
        self.backward_impl(dy, true);
        &self.dx
    }

    fn backward_impl(&mut self, dy: &[f32], input_grad: bool) {
        let g = self.geometry;
        assert_eq!(
            dy.len(),
            self.batch * g.image_len(),
            "dy is not batch x out_c x out_h x out_w"
        );
        let (rows, positions, in_c) = (g.rows(), g.positions(), self.in_channels);
        channel_sums_add(dy, g.height * g.width, &mut self.grad_bias);
        if input_grad {
            self.dx.resize(self.batch * self.input_len(), 0.0);
        }
        self.size_buffers();
        for (n, images) in self.chunks() {
            let cols = images * positions;
            let col = &mut self.col[..rows * cols];
            let in_cols = &mut self.in_cols[..in_c * cols];
            let padded = &mut self.padded[..images * g.channels * g.padded_plane().1];
            g.pad(&dy[n * g.image_len()..][..images * g.image_len()], padded);
            g.im2col(padded, col);
            let x = &self.x[n * in_c * positions..][..in_c * cols];
            gather(x, in_c, positions, in_cols);
            gemm(
                MatRef::row_major(in_cols, in_c, cols),
                MatRef::row_major(col, rows, cols).t(),
                1.0,
                &mut self.grad_weight,
                rows,
            );
            if input_grad {
                gemm(
                    MatRef::row_major(&self.weight, in_c, rows),
                    MatRef::row_major(col, rows, cols),
                    0.0,
                    in_cols,
                    cols,
                );
                let dx = &mut self.dx[n * in_c * positions..][..in_c * cols];
                scatter(in_cols, in_c, positions, None, dx);
            }
        }
    }

    pub fn zero_grad(&mut self) {
        self.grad_weight.fill(0.0);
        self.grad_bias.fill(0.0);
    }

    /// The parameters with their gradients, for `Adam::step`.
    pub fn params_and_grads(&mut self) -> [(&mut [f32], &[f32]); 2] {
        [
            (&mut self.weight, &self.grad_weight),
            (&mut self.bias, &self.grad_bias),
        ]
    }
}

#[cfg(test)]
mod tests;
