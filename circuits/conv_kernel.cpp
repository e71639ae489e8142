#include "circuits/detail/conv_kernel.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace provnn::detail {

namespace {
using matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
Eigen::Index ix(std::size_t v) noexcept { return static_cast<Eigen::Index>(v); }
}  // namespace

void conv_transposed_real(const conv_geometry& g, const double* w, const double* ck, double* acc) {
  const std::size_t icg = g.in_channels / g.group, ocg = g.out_channels / g.group;
  const std::size_t K = icg * g.kernel_h * g.kernel_w, P = std::size_t{g.out_h} * g.out_w;
  // Output positions in blocks of whole rows, so that the product stays near 8 MB.
  const std::size_t rows = std::max<std::size_t>(1, conv_transposed_max_block / std::max<std::size_t>(1, K * g.out_w));
  thread_local std::vector<double> cols;
  cols.resize(K * std::min<std::size_t>(P, rows * g.out_w));
  using strided = Eigen::Map<const matrix, 0, Eigen::OuterStride<>>;
  for (std::size_t grp = 0; grp < g.group; ++grp) {
    const Eigen::Map<const matrix> wg(w + grp * ocg * K, ix(ocg), ix(K));
    for (std::size_t oy0 = 0; oy0 < g.out_h; oy0 += rows) {
      const std::size_t oy1 = std::min<std::size_t>(g.out_h, oy0 + rows), pb = (oy1 - oy0) * g.out_w;
      Eigen::Map<matrix>(cols.data(), ix(K), ix(pb)).noalias() =
          wg.transpose() * strided(ck + grp * ocg * P + oy0 * g.out_w, ix(ocg), ix(pb), Eigen::OuterStride<>(ix(P)));
      scatter_columns(g, grp, oy0, oy1, cols.data(), acc, [](double a, double b) { return a + b; });
    }
  }
}

}  // namespace provnn::detail
