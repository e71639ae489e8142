// A program outside the provnn tree, built against the installed package.
#include <cstdio>

#include "semirings/boolean.hpp"
#include "semirings/real.hpp"

int main() {
  provnn::real_semiring r;
  provnn::boolean_semiring b;
  const double x = r.plus(r.times(2.0, 3.0), r.one());
  const bool y = b.times(b.lift(0, x), b.one());
  std::printf("%g %d\n", x, y ? 1 : 0);
  return (x == 7.0 && y) ? 0 : 1;
}
