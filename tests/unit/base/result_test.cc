// Tests for Result<T> and the generic error category.
#include "holdfast/result.h"

#include <string>

#include <gtest/gtest.h>

#include "holdfast/error.h"

namespace holdfast {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) {
    return fail(Errc::invalid_argument);
  }
  return v;
}

Result<void> chain(int v) {
  HOLDFAST_TRY(parse_positive(v));
  return {};
}

TEST(Result, HoldsValueOrError) {
  auto ok = parse_positive(3);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), Errc::invalid_argument);
  EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Result, TryPropagatesTheFirstError) {
  EXPECT_TRUE(chain(1));
  auto r = chain(0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), make_error_code(Errc::invalid_argument));
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

TEST(Errors, DescribeNamesCategoryAndCause) {
  EXPECT_EQ(describe(make_error_code(Errc::keepalive_lost)),
            "holdfast: connection lost: no answer to TCP keep-alive probes (dead or silently "
            "dropped path)");
  EXPECT_EQ(describe(std::error_code(ECONNREFUSED, std::system_category())),
            "system: Connection refused");
}

}  // namespace
}  // namespace holdfast
