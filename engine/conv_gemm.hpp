// Convolutions as matrix products (im2col + Eigen's GEMM), for the numeric passes whose every
// edge carries the same kind of term: the forward pass, and LRP-ε's and LRP-γ's sweeps on
// non-negative inputs. Per group g, with K = (input channels of g)·kernel_h·kernel_w and
// P = output positions:
//   cols (K × P)      cols[(c, ky, kx), (oy, ox)] = x[c, oy·sh + ky·dh − pt, ox·sw + kx·dw − pl],
//                     0 where that is padding (padding has no edges: it adds nothing);
//   W_g (ocg × K)     the layer's weights of g, row-major as stored;
//   forward           Y_g = W_g · cols (+ bias);   transposed: cols' = W_gᵀ · C_g, then each
//                     entry of cols' is added to the input it came from (col2im).
// The same sums as the edge runs of geometry.hpp, grouped differently: results differ from
// them by rounding only. Eigen runs one thread (no OpenMP here), so batch workers scale.
#pragma once

#include <cstddef>

#include "engine/network.hpp"

namespace provnn::engine::detail {

// T is double or float (the fp32 path, forward.hpp); weight (and bias) are the layer's, in T:
// c.weight and c.bias for double, float32_parameters' copies for float. c gives the geometry.

/// y = conv(x) + bias: y has out_channels·OH·OW values, x in_channels·H·W.
template <class T>
void conv_forward_gemm(const conv2d_op& c, const T* weight, const T* bias, const shape_t& in, const shape_t& out,
                       const T* x, T* y);

/// acc[j] += Σ_k w_jk · ck[k] over the layer's edges j → k (the transposed convolution).
template <class T>
void conv_transposed_gemm(const conv2d_op& c, const T* weight, const shape_t& in, const shape_t& out, const T* ck,
                          T* acc);

/// pos[k] += Σ_{w_jk ≥ 0} x_j·w_jk and neg[k] += Σ_{w_jk < 0} x_j·w_jk: one product with the
/// weights split by sign and stacked, [W⁺; W⁻] · cols.
template <class T>
void conv_split_gemm(const conv2d_op& c, const T* weight, const shape_t& in, const shape_t& out, const T* x, T* pos,
                     T* neg);

/// acc[j] += Σ_k w_jk · (w_jk ≥ 0 ? cp[k] : cn[k]): [W⁺; W⁻]ᵀ · [C⁺; C⁻], then col2im.
template <class T>
void conv_split_transposed_gemm(const conv2d_op& c, const T* weight, const shape_t& in, const shape_t& out,
                                const T* cp, const T* cn, T* acc);

/// The output positions of one matrix product are taken in blocks of at most
/// max(1, elements / K) columns (default 2^20 elements: an 8 MB im2col buffer per thread,
/// whatever the image). For tests, which need blocks that end mid-row. Not thread-safe.
void set_conv_gemm_block(std::size_t elements) noexcept;

}  // namespace provnn::engine::detail
