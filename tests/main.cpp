// doctest's main, compiled once for every test executable.
//
// ctest runs one test case per process, through --test-case=NAME (doctest_discover_tests). A
// filter that matches nothing — a renamed test, or a name CMake split at a ';' — would pass
// without running anything, so a filtered run that matches no test case fails here.
// (tools/check_test_names.py refuses such names before they reach ctest.)
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

namespace {

struct filter_guard : doctest::IReporter {
  static inline long matched = -1;  // test cases passing the filters; -1: no run (a query)
  explicit filter_guard(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& s) override {
    matched = static_cast<long>(s.numTestCasesPassingFilters);
  }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("filter_guard", 1, filter_guard);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit()) return rc;
  bool filtered = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    filtered = filtered || a.starts_with("--test-case=") || a.starts_with("-tc=");
  }
  if (filtered && filter_guard::matched == 0) {
    std::fprintf(stderr, "error: no test case matches the --test-case filter; the test ran nothing\n");
    return rc != 0 ? rc : 1;
  }
  return rc;
}
