// The C++ wrapper's rate limits: decisions, RAII permits and tokens, results
// and exceptions, moved-from safety, threads.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "resilience.hpp"

using namespace std::chrono_literals;

namespace {
constexpr std::uint64_t kSec = 1000000000ull;
}

TEST(TokenBucket, DecisionsCarryTheFiveFacts) {
  rsl::token_bucket b(4, 1, 1s);  // redis-cell's table: 5 tokens, 1 per second
  auto q = b.quota().value();
  EXPECT_EQ(q.max_burst, 4u);
  EXPECT_EQ(q.period_ns, kSec);
  const std::uint64_t t0 = 100 * kSec;
  for (std::uint64_t i = 0; i < 5; ++i) {
    rsl::decision d = b.acquire_at(1, t0).value();
    EXPECT_TRUE(d.allowed());
    EXPECT_EQ(d.remaining(), 4 - i);
    EXPECT_FALSE(d.has_retry_after());
    EXPECT_EQ(d.reason(), rsl::limit_reason::allowed);
  }
  auto denied = b.acquire_at(1, t0);
  ASSERT_TRUE(denied.ok()) << "a denial is an answer, not an error";
  EXPECT_FALSE(denied->allowed());
  EXPECT_EQ(denied->reason(), rsl::limit_reason::limited);
  EXPECT_EQ(denied->retry_after(), 1s);
  EXPECT_EQ(denied->reset_after(), 5s);
  EXPECT_EQ(denied->limit(), 5u);
  auto never = b.acquire_at(6, t0).value();
  EXPECT_EQ(never.reason(), rsl::limit_reason::exceeds_limit);
  EXPECT_EQ(never.retry_after(), rsl::nanos::max());
  EXPECT_TRUE(b.peek_at(1, t0 + kSec).value().allowed());
  EXPECT_TRUE(b.reset().ok());
  EXPECT_TRUE(b.peek(5).value().allowed());
  EXPECT_TRUE(b.try_acquire(5));
  EXPECT_FALSE(b.try_acquire());
}

TEST(TokenBucket, BadConfigThrowsOrReturnsTheCode) {
  EXPECT_THROW(rsl::token_bucket(1, 0, 1s), rsl::error);
  rsl_limiter_config c = rsl_limiter_config_default();
  c.clock = 42;
  auto r = rsl::token_bucket::make(c);
  EXPECT_EQ(r.status(), RSL_ERR_INVALID_ARG);
  c.clock = RSL_LIMITER_CLOCK_PRECISE;
  EXPECT_TRUE(rsl::token_bucket::make(c).ok());
  try {
    rsl::token_bucket bad(1, 10, 9ns);
    FAIL() << "expected rsl::error";
  } catch (const rsl::error& e) {
    EXPECT_EQ(e.status(), RSL_ERR_INVALID_ARG);
    EXPECT_NE(std::string(e.what()).find("rsl_quota"), std::string::npos);
  }
}

TEST(TokenBucket, MovedFromIsSafe) {
  rsl::token_bucket a(0, 1, 1s);
  rsl::token_bucket b = std::move(a);
  EXPECT_TRUE(b.try_acquire());
  EXPECT_FALSE(b.try_acquire());  // burst 0, 1 a second: empty now
  EXPECT_FALSE(a);                                          // NOLINT: use after move on purpose
  EXPECT_EQ(a.acquire().status(), RSL_ERR_NULL_ARG);        // NOLINT
  EXPECT_EQ(a.reset().status(), RSL_ERR_NULL_ARG);          // NOLINT
  EXPECT_THROW(a.try_acquire(), rsl::error);                // NOLINT
  EXPECT_EQ(rsl::token_bucket().peek().status(), RSL_ERR_NULL_ARG);
}

TEST(TokenBucket, ThreadsGetExactlyTheBucket) {
  rsl::token_bucket b(9999, 1, 1s);
  std::atomic<int> granted{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&] {
      for (int j = 0; j < 5000; ++j) {
        if (b.acquire_at(1, kSec).value().allowed()) granted.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(granted.load(), 10000);
}

TEST(KeyedLimiter, KeysAreIndependentAndBatchesMatch) {
  rsl_keyed_limiter_config c = rsl_keyed_limiter_config_default();
  c.quota = rsl_quota{1, 1, kSec};  // 2 tokens per key
  c.max_keys = 3;
  rsl::keyed_limiter l(c);
  EXPECT_TRUE(l.acquire_at("alice", 2, kSec).value().allowed());
  EXPECT_FALSE(l.acquire_at(std::string("alice"), 1, kSec)->allowed());
  std::vector<std::uint8_t> bob{'b', 'o', 'b'};
  EXPECT_TRUE(l.acquire_at(bob, 1, kSec)->allowed());
  EXPECT_EQ(l.size().value(), 2u);

  auto ds = l.acquire_many({"alice", "bob", "bob", "carol"}, 1, kSec).value();
  ASSERT_EQ(ds.size(), 4u);
  EXPECT_FALSE(ds[0].allowed());
  EXPECT_TRUE(ds[1].allowed());
  EXPECT_FALSE(ds[2].allowed());
  EXPECT_TRUE(ds[3].allowed());
  EXPECT_EQ(ds[3].remaining(), 1u);
  // Full: a new key is denied (the default full policy).
  auto full = l.acquire_at("dave", 1, kSec).value();
  EXPECT_EQ(full.reason(), rsl::limit_reason::table_full);
  auto st = l.stats().value();
  EXPECT_EQ(st.keys, 3u);
  EXPECT_EQ(st.denied_full, 1u);
  EXPECT_EQ(l.reclaim_at(10 * kSec).value(), 3u);
  EXPECT_EQ(l.size().value(), 0u);
  EXPECT_TRUE(l.reclaim().ok());
  EXPECT_TRUE(l.try_acquire("x"));  // real clock (rsl_keyed_limiter_check)
  EXPECT_TRUE(l.try_acquire("x"));
  EXPECT_FALSE(l.try_acquire("x"));     // 2 tokens a key
  EXPECT_FALSE(l.try_acquire("y", 3));  // above the limit: never
  EXPECT_TRUE(l.acquire_many({}).value().empty());
}

TEST(KeyedLimiter, ErrorsAndMovedFrom) {
  rsl_keyed_limiter_config c = rsl_keyed_limiter_config_default();
  c.full_policy = 7;
  EXPECT_THROW(rsl::keyed_limiter{c}, rsl::error);
  EXPECT_EQ(rsl::keyed_limiter::make(c).status(), RSL_ERR_INVALID_ARG);
  c = rsl_keyed_limiter_config_default();
  rsl::keyed_limiter a(c);
  rsl::keyed_limiter b = std::move(a);
  EXPECT_EQ(a.acquire("k").status(), RSL_ERR_NULL_ARG);                 // NOLINT
  EXPECT_EQ(a.acquire_many({"k"}).status(), RSL_ERR_NULL_ARG);          // NOLINT
  EXPECT_EQ(a.size().status(), RSL_ERR_NULL_ARG);                       // NOLINT
  EXPECT_THROW(a.try_acquire("k"), rsl::error);                         // NOLINT
  EXPECT_EQ(b.acquire(rsl::bytes(nullptr, 3)).status(), RSL_ERR_NULL_ARG);
  EXPECT_TRUE(b.acquire(rsl::bytes(nullptr, 0)).ok());  // the empty key
}

TEST(Bulkhead, PermitsAreRaii) {
  rsl::bulkhead b(2, 0);
  {
    auto p1 = b.try_acquire();
    auto p2 = b.try_acquire();
    ASSERT_TRUE(p1.ok() && p2.ok());
    EXPECT_EQ(b.try_acquire().status(), RSL_ERR_REJECTED);
    EXPECT_EQ(b.acquire_for(1ms).status(), RSL_ERR_FULL);  // no room to wait
    EXPECT_EQ(b.stats()->in_flight, 2u);
    rsl::bulkhead::permit moved = std::move(*p1);
    EXPECT_FALSE(*p1);
    EXPECT_TRUE(moved);
    EXPECT_TRUE(moved.release().ok());
    EXPECT_EQ(moved.release().status(), RSL_ERR_NULL_ARG);  // released once only
    EXPECT_EQ(b.stats()->in_flight, 1u);
  }
  auto st = b.stats().value();
  EXPECT_EQ(st.in_flight, 0u);
  EXPECT_EQ(st.invalid_releases, 0u);
  EXPECT_EQ(b.call([] { return 7; }), 7);
  EXPECT_THROW(rsl::bulkhead(0, 0), rsl::error);
  EXPECT_EQ(rsl::bulkhead::make(1, RSL_BULKHEAD_MAX + 1).status(), RSL_ERR_INVALID_ARG);
  rsl::bulkhead gone = std::move(b);
  EXPECT_EQ(b.try_acquire().status(), RSL_ERR_NULL_ARG);  // NOLINT
}

TEST(Bulkhead, WaitersTimeOutOrGetThePermit) {
  rsl::bulkhead b(1, 1);
  auto held = b.try_acquire().value();
  EXPECT_EQ(b.acquire_for(2ms).status(), RSL_ERR_TIMEOUT);
  std::thread releaser([&] {
    while (b.stats()->waiting == 0) std::this_thread::sleep_for(1ms);
    (void)held.release();
  });
  auto got = b.acquire_for(10s);
  releaser.join();
  EXPECT_TRUE(got.ok());
  EXPECT_EQ(b.stats()->waited, 1u);
  // "Wait for ever" waits (it used to overflow to "do not wait").
  std::thread releaser2([&] {
    while (b.stats()->waiting == 0) std::this_thread::sleep_for(1ms);
    (void)got->release();
  });
  auto forever = b.acquire_for(std::chrono::seconds::max());
  releaser2.join();
  EXPECT_TRUE(forever.ok());
}

TEST(Bulkhead, ThreadsNeverExceedTheLimit) {
  rsl::bulkhead b(3, 8);
  std::atomic<int> inside{0}, peak{0}, ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i) {
    ts.emplace_back([&] {
      for (int j = 0; j < 2000; ++j) {
        auto p = b.acquire_for(10s);
        if (!p) continue;
        int now = inside.fetch_add(1) + 1;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        inside.fetch_sub(1);
        ok.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 6 * 2000);
  EXPECT_LE(peak.load(), 3);
  EXPECT_EQ(b.stats()->in_flight, 0u);
}

TEST(Adaptive, TokensAreRaiiAndMoveTheLimit) {
  rsl_adaptive_config c = rsl_adaptive_config_default();
  c.initial_limit = 4;
  c.min_limit = 1;
  c.max_limit = 8;
  c.aimd_backoff = 0.5;
  rsl::adaptive_limiter a(c);
  EXPECT_EQ(a.limit().value(), 4u);
  {
    std::vector<rsl::adaptive_limiter::token> ts;
    for (int i = 0; i < 4; ++i) ts.push_back(a.try_acquire_at(1000).value());
    EXPECT_EQ(a.try_acquire().status(), RSL_ERR_REJECTED);
    EXPECT_EQ(a.in_flight().value(), 4u);
    EXPECT_TRUE(ts[0].dropped().ok());
    EXPECT_EQ(ts[0].dropped().status(), RSL_ERR_NULL_ARG);  // reported once only
    EXPECT_EQ(a.limit().value(), 2u);
    EXPECT_TRUE(ts[1].success(1ms).ok());
    EXPECT_TRUE(ts[2].ignore().ok());
    EXPECT_EQ(ts[3].raw().inflight, 4u);
  }  // ts[3] is ignored on destruction
  EXPECT_EQ(a.in_flight().value(), 0u);
  auto t = a.try_acquire().value();
  EXPECT_TRUE(t.success().ok());  // measured
  auto st = a.stats().value();
  EXPECT_EQ(st.rejected, 1u);
  EXPECT_EQ(st.in_flight, 0u);

  c.algorithm = 9;
  EXPECT_THROW(rsl::adaptive_limiter{c}, rsl::error);
  EXPECT_EQ(rsl::adaptive_limiter::make(c).status(), RSL_ERR_INVALID_ARG);
  rsl::adaptive_limiter b = std::move(a);
  EXPECT_EQ(a.try_acquire().status(), RSL_ERR_NULL_ARG);  // NOLINT
  EXPECT_EQ(a.limit().status(), RSL_ERR_NULL_ARG);        // NOLINT
  EXPECT_TRUE(b.limit().ok());
}

TEST(Adaptive, ThreadsStayWithinAFixedLimit) {
  rsl_adaptive_config c = rsl_adaptive_config_default();
  c.initial_limit = c.min_limit = c.max_limit = 2;
  rsl::adaptive_limiter a(c);
  std::atomic<int> inside{0}, peak{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&] {
      for (int j = 0; j < 2000; ++j) {
        auto t = a.try_acquire();
        if (!t) continue;
        int now = inside.fetch_add(1) + 1;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        inside.fetch_sub(1);
        (void)t->success(1ms);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_LE(peak.load(), 2);
  EXPECT_EQ(a.in_flight().value(), 0u);
}
