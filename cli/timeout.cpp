// --timeout SECONDS: a watchdog for work that can explode (building the circuit of a large
// network, symbolic evaluation, polynomial expansion). When the time is up, the SIGALRM
// handler removes the temporary files of writes in progress (common/atomic_file.hpp), says
// which limit was hit and how to raise it, and ends the process with exit code 124 (the code
// of timeout(1)). Everything in the handler is async-signal-safe: the message is formatted
// when the watchdog is armed.
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "common/atomic_file.hpp"
#include "common/error.hpp"

namespace provnn::cli {
namespace {

char timeout_message[512];
std::size_t timeout_message_size = 0;

extern "C" void on_timeout(int) {
  remove_pending_temporaries();
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, timeout_message, timeout_message_size);
  ::_exit(exit_timeout);
}

}  // namespace

void arm_timeout(double seconds) {
  if (!std::isfinite(seconds) || seconds <= 0 || seconds > 1e9)
    throw parse_error(fmt::format("--timeout {}: expected a number of seconds > 0 (and at most 1e9)", seconds));
  const auto r = fmt::format_to_n(timeout_message, sizeof timeout_message - 1,
                                  "provnn: error: the time limit of {} s was reached (--timeout {}); stopped without "
                                  "writing unfinished outputs. Raise --timeout, or drop it for no limit.\n",
                                  seconds, seconds);
  timeout_message_size = r.size < sizeof timeout_message ? r.size : sizeof timeout_message - 1;

  struct sigaction sa {};
  sa.sa_handler = on_timeout;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGALRM, &sa, nullptr);
  itimerval t{};
  const double whole = std::floor(seconds);
  t.it_value.tv_sec = static_cast<time_t>(whole);
  t.it_value.tv_usec = static_cast<suseconds_t>((seconds - whole) * 1e6);
  if (t.it_value.tv_sec == 0 && t.it_value.tv_usec == 0) t.it_value.tv_usec = 1;
  ::setitimer(ITIMER_REAL, &t, nullptr);
}

}  // namespace provnn::cli
