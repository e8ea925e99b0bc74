// Every suite's main: doctest's, plus the honest skips of skip.h: a listener tells skip() which test case
// is running; at the end the skips are counted on stdout, and a run in which every test case skipped
// exits 77, which meson reports as SKIP.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "skip.h"

namespace {

struct SkipListener : doctest::IReporter {
  explicit SkipListener(const doctest::ContextOptions&) {}
  void test_case_start(const doctest::TestCaseData& t) override {
    ember_test::skip_state().current = t.m_name;
    ++ember_test::skip_state().n_run;
  }
  void test_case_reenter(const doctest::TestCaseData& t) override { ember_test::skip_state().current = t.m_name; }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("ember_skips", 1, SkipListener);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit()) return rc;
  const ember_test::SkipState& s = ember_test::skip_state();
  if (s.n_skips > 0)
    std::printf("[ember] skipped: %zu of %zu test cases skipped some or all of their checks (SKIPPED lines above)\n",
                s.skipped.size(), s.n_run);
  if (rc == 0 && s.n_run > 0 && s.skipped.size() == s.n_run) return 77;  // nothing but skips
  return rc;
}
