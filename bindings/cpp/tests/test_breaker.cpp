// The C++ wrapper's circuit breaker and registry: RAII permits, call(),
// callbacks, sharing, moved-from safety, threads.
#include <gtest/gtest.h>

#include <atomic>
#include <limits>
#include <string>
#include <vector>
#include <stdexcept>
#include <thread>

#include "resilience.hpp"

using namespace std::chrono_literals;

static rsl::breaker_config small() {
  return rsl::breaker_config().count_window(4).minimum_calls(4).wait_in_open(1s).permitted_calls_in_half_open(2);
}

TEST(Breaker, OpensOnFailuresAndRejectsWithRetryAfter) {
  rsl::circuit_breaker b(small());
  for (int i = 0; i < 4; ++i) {
    auto p = b.try_acquire();
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->failure(1ms).ok());
  }
  EXPECT_EQ(b.state().value(), rsl::breaker_state::open);
  rsl::nanos retry{0};
  auto r = b.try_acquire(&retry);
  EXPECT_EQ(r.status(), RSL_ERR_REJECTED);
  EXPECT_GT(retry, 0ns);
  EXPECT_LE(retry, 1s);
  EXPECT_THROW(r.value(), rsl::error);
  auto m = b.metrics().value();
  EXPECT_EQ(m.calls, 4u);
  EXPECT_EQ(m.failed, 4u);
  EXPECT_EQ(m.failure_rate, 100.0f);
  EXPECT_EQ(m.not_permitted, 1u);
  EXPECT_EQ(b.transitions_to(rsl::breaker_state::open).value(), 1u);
}

TEST(Breaker, GuardRecordsOnceAndIgnoresOnDestruction) {
  rsl::circuit_breaker b(small());
  {
    auto p = b.try_acquire().value();
    EXPECT_TRUE(static_cast<bool>(p));
  }  // dropped: ignored, nothing counted
  EXPECT_EQ(b.metrics()->calls, 0u);
  auto p = b.try_acquire().value();
  EXPECT_TRUE(p.success(1ms).ok());
  EXPECT_EQ(p.success(1ms).status(), RSL_ERR_NULL_ARG);  // already recorded
  EXPECT_EQ(b.metrics()->calls, 1u);
  // A released permit is recorded by hand; after a transition it is stale.
  rsl_permit raw = b.try_acquire().value().release();
  EXPECT_TRUE(b.reset().ok());
  EXPECT_EQ(b.record(raw, rsl::outcome::success, 1ms).status(), RSL_ERR_STALE);
  // Moving a guard moves the duty to record.
  auto q = b.try_acquire().value();
  rsl::permit_guard moved = std::move(q);
  EXPECT_FALSE(static_cast<bool>(q));  // NOLINT: use after move on purpose
  EXPECT_TRUE(moved.record(rsl::outcome::failure, 2ms).ok());
  EXPECT_EQ(b.metrics()->failed, 1u);
}

TEST(Breaker, CallRecordsSuccessAndFailureAndRejects) {
  rsl::circuit_breaker b(small());
  EXPECT_EQ(b.call([] { return 42; }), 42);
  EXPECT_THROW(b.call([]() -> int { throw std::logic_error("down"); }), std::logic_error);
  EXPECT_THROW(b.call([] { throw std::logic_error("down"); }), std::logic_error);
  EXPECT_EQ(b.state().value(), rsl::breaker_state::closed);  // 3 calls < minimum 4
  EXPECT_THROW(b.call([] { throw std::logic_error("down"); }), std::logic_error);
  auto m = b.metrics().value();
  EXPECT_EQ(m.calls, 4u);
  EXPECT_EQ(m.failed, 3u);
  EXPECT_EQ(b.state().value(), rsl::breaker_state::open);  // 3 of 4 >= 50 %
  try {
    b.call([] {});
    FAIL() << "expected a rejection";
  } catch (const rsl::error& e) {
    EXPECT_EQ(e.status(), RSL_ERR_REJECTED);
    // An answer carries no detail, not an older call's message.
    EXPECT_EQ(std::string(e.what()), rsl_status_str(RSL_ERR_REJECTED));
  }
}

TEST(Breaker, CallPassesReferencesThrough) {
  rsl::circuit_breaker b(small());
  int x = 41;
  int& r = b.call([&]() -> int& { return x; });
  EXPECT_EQ(&r, &x);
  r = 42;
  EXPECT_EQ(x, 42);
  std::string s = "moved";
  std::string&& rr = b.call([&]() -> std::string&& { return std::move(s); });
  EXPECT_EQ(&rr, &s);
  auto v = b.call([] { return std::vector<int>(3, 7); });
  EXPECT_EQ(v.size(), 3u);
}

TEST(Errors, DetailIsTheFailedCallsOwnNotAnOlderOne) {
  // A failure with a message leaves it as the thread's last error...
  EXPECT_THROW(rsl::mpmc_queue(0), rsl::error);
  EXPECT_NE(std::string(rsl_last_error()), "");
  // ...and a later answer's exception does not borrow it.
  rsl::circuit_breaker b(small());
  (void)b.force_open();
  try {
    b.call([] { return 1; });
    FAIL() << "expected a rejection";
  } catch (const rsl::error& e) {
    EXPECT_EQ(std::string(e.what()).find("capacity"), std::string::npos) << e.what();
  }
  // A result read later keeps the detail of the call that made it.
  rsl_limiter_config lc = rsl_limiter_config_default();
  lc.clock = 42;
  auto bad = rsl::token_bucket::make(lc);
  EXPECT_THROW(rsl::mpmc_queue(0), rsl::error);  // a newer failure
  try {
    (void)bad.value();
    FAIL() << "expected an error";
  } catch (const rsl::error& e) {
    EXPECT_NE(std::string(e.what()).find("clock"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("capacity"), std::string::npos) << e.what();
  }
  // A permit recorded twice says so itself.
  rsl::circuit_breaker c(small());
  auto p = c.try_acquire().value();
  EXPECT_TRUE(p.success(1ms).ok());
  auto again = p.success(1ms);
  EXPECT_EQ(again.status(), RSL_ERR_NULL_ARG);
  try {
    again.value();
  } catch (const rsl::error& e) {
    EXPECT_NE(std::string(e.what()).find("already recorded"), std::string::npos) << e.what();
  }
}

TEST(Durations, ConvertWithoutOverflow) {
  EXPECT_EQ(rsl::to_ns(std::chrono::seconds::max()), UINT64_MAX);
  EXPECT_EQ(rsl::to_ns(std::chrono::hours::max()), UINT64_MAX);
  EXPECT_EQ(rsl::to_ns(std::chrono::nanoseconds::max()), static_cast<std::uint64_t>(INT64_MAX));
  EXPECT_EQ(rsl::to_ns(-1s), 0u);
  EXPECT_EQ(rsl::to_ns(1500ms), 1500000000u);
  EXPECT_EQ(rsl::to_ns(std::chrono::duration<long long, std::pico>(2500)), 2u);
  EXPECT_EQ(rsl::to_ns(std::chrono::duration<double>(0.25)), 250000000u);
  EXPECT_EQ(rsl::to_ns(std::chrono::duration<double>(1e30)), UINT64_MAX);
  EXPECT_EQ(rsl::to_ns(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())), 0u);
  EXPECT_EQ(rsl::to_ns(std::chrono::duration<double>(-std::numeric_limits<double>::infinity())), 0u);
  // "Open for ever" is a valid breaker setting, not an overflow to 0.
  rsl::circuit_breaker b(rsl::breaker_config().wait_in_open(std::chrono::hours::max()));
  (void)b.force_open();
}

TEST(Breaker, ManualTransitionsAndCallbacks) {
  rsl::circuit_breaker b(small());
  std::atomic<int> seen{0};
  std::atomic<int> last_to{-1};
  ASSERT_TRUE(b.on_state_change([&](const rsl_breaker_transition& t) {
                 seen++;
                 last_to = t.to;
                 throw std::runtime_error("swallowed, never crosses the C library");
               }).ok());
  EXPECT_EQ(b.force_open().value(), 1u);
  EXPECT_EQ(last_to.load(), RSL_BREAKER_FORCED_OPEN);
  EXPECT_EQ(b.try_acquire().status(), RSL_ERR_REJECTED);
  EXPECT_EQ(b.disable().value(), 2u);
  EXPECT_TRUE(b.try_acquire().ok());
  EXPECT_EQ(b.metrics_only().value(), 3u);
  EXPECT_EQ(b.reset().value(), 4u);
  EXPECT_EQ(b.transition_to(rsl::breaker_state::half_open).value(), 5u);
  EXPECT_EQ(seen.load(), 5);
  EXPECT_EQ(b.poll().value(), UINT64_MAX);  // no half-open timeout configured
  EXPECT_EQ(b.transition_to(static_cast<rsl::breaker_state>(9)).status(), RSL_ERR_INVALID_ARG);
}

TEST(Breaker, BadConfigThrowsAndMovedFromIsSafe) {
  EXPECT_THROW(rsl::circuit_breaker(rsl::breaker_config().failure_rate_threshold(0)), rsl::error);
  rsl::breaker_config c;
  c.raw()._reserved[0] = 1;
  EXPECT_THROW(rsl::circuit_breaker{c}, rsl::error);
  rsl::circuit_breaker a(small());
  rsl::circuit_breaker b = std::move(a);
  EXPECT_FALSE(static_cast<bool>(a));                    // NOLINT: use after move on purpose
  EXPECT_EQ(a.try_acquire().status(), RSL_ERR_NULL_ARG);  // NOLINT
  EXPECT_EQ(a.state().status(), RSL_ERR_NULL_ARG);        // NOLINT
  EXPECT_EQ(a.share().status(), RSL_ERR_NULL_ARG);        // NOLINT
  EXPECT_EQ(a.on_state_change([](const rsl_breaker_transition&) {}).status(), RSL_ERR_NULL_ARG);  // NOLINT
  EXPECT_THROW(a.call([] {}), rsl::error);                // NOLINT
  EXPECT_TRUE(b.try_acquire().ok());
}

TEST(Breaker, SharedOwnersSeeOneBreaker) {
  rsl::circuit_breaker a(small());
  rsl::circuit_breaker b = a.share().value();
  EXPECT_EQ(a.get(), b.get());
  (void)a.force_open();
  { rsl::circuit_breaker gone = std::move(a); }
  EXPECT_EQ(b.state().value(), rsl::breaker_state::forced_open);
}

TEST(Breaker, ThreadsTakeExactlyThePermittedProbes) {
  rsl::circuit_breaker b(small().permitted_calls_in_half_open(5));
  for (int round = 0; round < 20; ++round) {
    (void)b.transition_to(rsl::breaker_state::half_open);
    std::atomic<int> got{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < 50; ++i) {
          auto p = b.try_acquire();
          if (p) {
            got++;
            (void)p->release();  // keep the slot taken
          }
        }
      });
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(got.load(), 5);
  }
}

TEST(Registry, SameNameSameBreakerAndFullWhenNothingIdle) {
  rsl::breaker_registry r(2);
  auto a = r.get("users", small()).value();
  auto a2 = r.get("users").value();
  EXPECT_EQ(a.get(), a2.get());
  auto b = r.get(std::string("orders")).value();
  EXPECT_EQ(r.size().value(), 2u);
  EXPECT_EQ(r.get("third").status(), RSL_ERR_FULL);
  { rsl::circuit_breaker drop = std::move(b); }  // "orders" becomes idle
  EXPECT_TRUE(r.get("third").ok());
  EXPECT_EQ(r.find("orders").status(), RSL_ERR_NOT_FOUND);
  EXPECT_TRUE(r.find("users").ok());
  EXPECT_TRUE(r.remove("users").ok());
  EXPECT_EQ(r.remove("users").status(), RSL_ERR_NOT_FOUND);
  EXPECT_TRUE(a.try_acquire().ok());  // removed, still a working breaker
  EXPECT_THROW(rsl::breaker_registry(0), rsl::error);
  rsl::breaker_registry moved = std::move(r);
  EXPECT_EQ(r.size().status(), RSL_ERR_NULL_ARG);  // NOLINT: use after move on purpose
  EXPECT_EQ(r.get("x").status(), RSL_ERR_NULL_ARG);  // NOLINT
  EXPECT_EQ(moved.size().value(), 1u);
}
