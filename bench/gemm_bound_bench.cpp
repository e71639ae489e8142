// How fast can any fp64 implementation explain vgg-small on this machine? (issue 5: provnn's
// numeric LRP-ε against Zennit's 7 954 µs.) Times Eigen 3.4's GEMM on the im2col shapes of
// vgg-small's linear layers — the forward pass as matrix products — in fp64 and fp32, one
// thread, and provnn's dense LRP-ε on the same network in the same process. An LRP pass needs
// the forward products and at least as many again for the backward ones, so 2 × (forward as
// GEMMs) bounds any im2col + GEMM implementation from below (before its copies and
// element-wise work).
//
//   gemm_bound_bench [REPEATS]        (default 21; the median is printed)
//
// Built twice: gemm_bound_bench for the project's target (generic x86-64 unless configured
// otherwise) and, where the compiler takes it, gemm_bound_bench_native with -march=native.
#include <Eigen/Dense>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/forward.hpp"
#include "engine/lrp.hpp"
#include "engine/rules.hpp"
#include "engine/synthetic.hpp"

namespace {

template <class F>
double median_us(int reps, F&& f) {
  std::vector<double> ts;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ts.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

volatile double sink = 0.0;

template <class T>
double gemm_us(int m, int k, int n, int reps) {
  using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  const mat a = mat::Random(m, k), b = mat::Random(k, n);
  mat c(m, n);
  const double t = median_us(reps, [&] { c.noalias() = a * b; });
  sink = static_cast<double>(c(0, 0));
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 21;
  // vgg-small (engine/synthetic.hpp): 32×32×3 → conv64, conv64, pool, conv128, conv128, pool,
  // fc256, fc10. A 3×3 convolution as im2col: (out channels × in channels·9) · (in channels·9 ×
  // positions).
  struct shape {
    int m, k, n;
    const char* what;
  };
  const shape layers[] = {{64, 27, 1024, "conv 3->64, 32x32"},      {64, 576, 1024, "conv 64->64, 32x32"},
                          {128, 576, 256, "conv 64->128, 16x16"},  {128, 1152, 256, "conv 128->128, 16x16"},
                          {256, 8192, 1, "dense 8192->256"},        {10, 256, 1, "dense 256->10"}};
  double f64 = 0, f32 = 0, macs = 0;
  std::printf("%-22s %12s %14s %10s %14s %10s\n", "layer", "multiply-adds", "fp64 us", "GMAC/s", "fp32 us", "GMAC/s");
  for (const auto& l : layers) {
    const double t64 = gemm_us<double>(l.m, l.k, l.n, reps), t32 = gemm_us<float>(l.m, l.k, l.n, reps);
    const double n = static_cast<double>(l.m) * l.k * l.n;
    f64 += t64;
    f32 += t32;
    macs += n;
    std::printf("%-22s %12.0f %14.1f %10.1f %14.1f %10.1f\n", l.what, n, t64, n / t64 / 1e3, t32, n / t32 / 1e3);
  }
  std::printf("forward as GEMMs: %.1f M multiply-adds, fp64 %.0f us, fp32 %.0f us\n", macs / 1e6, f64, f32);
  std::printf("bound for an LRP pass (2 x forward): fp64 %.0f us, fp32 %.0f us; Zennit LRP-eps (issue 5): 7954 us\n",
              2 * f64, 2 * f32);

  using namespace provnn::engine;
  const network net = synthetic_network("vgg-small");
  const auto fwd = forward(net, synthetic_input(net));
  lrp_options o;
  composite comp;
  add_rule_option(comp, "epsilon");
  o.layer_rules = resolve(comp, net);
  const double ours = median_us(std::max(3, reps / 4), [&] { sink = lrp(net, fwd, o).input_relevance()[0]; });
  std::printf("provnn dense LRP-eps (fp64): %.0f us = %.2f x the fp64 bound, %.2f x Zennit\n", ours, ours / (2 * f64),
              ours / 7954.0);
}
