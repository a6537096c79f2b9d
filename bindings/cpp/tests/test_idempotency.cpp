// The C++ wrapper's idempotency store: every answer, large responses,
// moved-from safety, racing begins.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "resilience.hpp"

using namespace std::chrono_literals;
using kind = rsl::begin_result::kind;

TEST(Idempotency, StartedInProgressCompletedMismatch) {
  rsl::idempotency_store s;
  auto a = s.begin("order-1", "fp", 30s).value();
  EXPECT_EQ(a.state, kind::started);
  EXPECT_FALSE(a.takeover);
  EXPECT_NE(a.token, 0u);
  auto b = s.begin("order-1", "fp", 30s).value();
  EXPECT_EQ(b.state, kind::in_progress);
  EXPECT_GT(b.retry_after, 0ns);
  EXPECT_LE(b.retry_after, 30s);
  EXPECT_EQ(s.begin("order-1", "other", 30s).status(), RSL_ERR_MISMATCH);
  EXPECT_EQ(s.complete("order-1", a.token + 1, "no").status(), RSL_ERR_NOT_OWNER);
  EXPECT_TRUE(s.complete("order-1", a.token, "201 Created").ok());
  auto c = s.begin("order-1", "fp", 30s).value();
  EXPECT_EQ(c.state, kind::completed);
  EXPECT_EQ(c.response, "201 Created");
  EXPECT_EQ(s.stats()->replays, 1u);
}

TEST(Idempotency, ResponsesLargerThanTheFirstBufferAreReplayedWhole) {
  rsl::idempotency_store s;
  std::string big(100000, 'r');
  big[99999] = '!';
  auto a = s.begin("k", "", 1s).value();
  EXPECT_TRUE(s.complete("k", a.token, big).ok());
  auto c = s.begin("k", "", 1s).value();
  EXPECT_EQ(c.state, kind::completed);
  EXPECT_EQ(c.response, big);
}

TEST(Idempotency, AbandonTakeoverAndExplicitTime) {
  rsl::idempotency_store s(rsl::idempotency_config().shards(1).retention(10s));
  const std::uint64_t t = 1000000000000ull;
  auto a = s.begin_at("k", "fp", 5s, t).value();
  auto b = s.begin_at("k", "fp2", 5s, t + 5000000000ull).value();
  EXPECT_EQ(b.state, kind::started);
  EXPECT_TRUE(b.takeover);
  EXPECT_EQ(s.complete_at("k", a.token, "late", 0s, t + 6000000000ull).status(), RSL_ERR_NOT_OWNER);
  EXPECT_TRUE(s.complete_at("k", b.token, "ok", 1s, t + 6000000000ull).ok());
  EXPECT_EQ(s.begin_at("k", "fp2", 5s, t + 6500000000ull)->response, "ok");
  auto c = s.begin_at("k", "fp3", 5s, t + 7000000000ull).value();  // retention over
  EXPECT_EQ(c.state, kind::started);
  EXPECT_TRUE(s.abandon("k", c.token).ok());
  EXPECT_EQ(s.abandon("k", c.token).status(), RSL_ERR_NOT_FOUND);
  EXPECT_EQ(s.sweep(100).value(), 0u);
  EXPECT_EQ(s.begin("", "fp", 1s).status(), RSL_ERR_INVALID_ARG);
  EXPECT_EQ(s.begin("k", "fp", 0s).status(), RSL_ERR_INVALID_ARG);
  EXPECT_EQ(s.begin(std::string(256, 'k'), "fp", 1s).status(), RSL_ERR_TOO_LARGE);
}

TEST(Idempotency, BadConfigThrowsAndMovedFromIsSafe) {
  EXPECT_THROW(rsl::idempotency_store(rsl::idempotency_config().shards(3)), rsl::error);
  rsl::idempotency_store a;
  rsl::idempotency_store b = std::move(a);
  EXPECT_EQ(a.begin("k", "", 1s).status(), RSL_ERR_NULL_ARG);    // NOLINT: use after move on purpose
  EXPECT_EQ(a.complete("k", 1, "").status(), RSL_ERR_NULL_ARG);  // NOLINT
  EXPECT_EQ(a.abandon("k", 1).status(), RSL_ERR_NULL_ARG);       // NOLINT
  EXPECT_EQ(a.stats().status(), RSL_ERR_NULL_ARG);               // NOLINT
  EXPECT_EQ(a.sweep(1).status(), RSL_ERR_NULL_ARG);              // NOLINT
  EXPECT_TRUE(b.begin("k", "", 1s).ok());
}

TEST(Idempotency, RacingBeginsStartExactlyOnce) {
  rsl::idempotency_store s;
  constexpr int keys = 300;
  std::atomic<int> started{0}, replayed{0}, other{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int k = 0; k < keys; ++k) {
        std::string key = "key-" + std::to_string(k);
        for (;;) {
          auto r = s.begin(key, "fp", 60s);
          if (!r) {
            other++;
            break;
          }
          if (r->state == kind::started) {
            started++;
            if (!s.complete(key, r->token, key)) other++;
            break;
          }
          if (r->state == kind::completed) {
            if (r->response == key) replayed++;
            else other++;
            break;
          }
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(started.load(), keys);
  EXPECT_EQ(replayed.load(), 3 * keys);
  EXPECT_EQ(other.load(), 0);
}
