//! Convolutions (im2col + GEMM): being written.
