// The C++ wrapper's queues: RAII, results and exceptions, moved-from safety.
#include <gtest/gtest.h>

#include <thread>

#include "resilience.hpp"

TEST(Version, MatchesHeader) {
  EXPECT_TRUE(rsl::abi_compatible());
  EXPECT_FALSE(rsl::version().empty());
}

TEST(Spsc, PushPopAndFull) {
  auto [p, c] = rsl::make_spsc(2);
  EXPECT_EQ(p.capacity().value(), 2u);
  EXPECT_TRUE(p.try_push(1));
  EXPECT_TRUE(p.push(2).ok());
  EXPECT_FALSE(p.try_push(3));
  EXPECT_EQ(p.push(3).status(), RSL_ERR_FULL);
  EXPECT_EQ(c.pop().value(), 1u);
  EXPECT_EQ(*c.pop(), 2u);
  auto empty = c.pop();
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.status(), RSL_ERR_EMPTY);
  EXPECT_THROW(empty.value(), rsl::error);
}

TEST(Spsc, ThreadsMoveEveryPayloadInOrder) {
  auto [p, c] = rsl::make_spsc(64);
  constexpr std::uint64_t n = 100000;
  std::thread producer([&p = p] {
    for (std::uint64_t i = 0; i < n;) {
      if (p.try_push(i)) ++i;
    }
  });
  std::uint64_t expect = 0;
  std::uint64_t buf[16];
  while (expect < n) {
    std::size_t got = c.pop_many(buf, 16).value();
    for (std::size_t i = 0; i < got; ++i) ASSERT_EQ(buf[i], expect++);
  }
  producer.join();
}

TEST(Spsc, MovedFromIsSafe) {
  auto [p, c] = rsl::make_spsc(4);
  rsl::spsc_producer q = std::move(p);
  EXPECT_TRUE(q.try_push(5));
  EXPECT_EQ(p.push(1).status(), RSL_ERR_NULL_ARG);  // NOLINT: use after move on purpose
  EXPECT_THROW(p.try_push(1), rsl::error);           // NOLINT
  EXPECT_EQ(c.pop().value(), 5u);
}

TEST(Spsc, BadCapacityThrowsWithCode) {
  try {
    (void)rsl::make_spsc(0);
    FAIL() << "expected rsl::error";
  } catch (const rsl::error& e) {
    EXPECT_EQ(e.status(), RSL_ERR_INVALID_ARG);
    EXPECT_EQ(e.code(), rsl::make_error_code(RSL_ERR_INVALID_ARG));
    EXPECT_NE(std::string(e.what()).find("capacity"), std::string::npos);
  }
}

TEST(Mpmc, ManyThreadsExactlyOnce) {
  rsl::mpmc_queue q(128);
  constexpr std::uint64_t per = 50000;
  std::vector<std::thread> producers;
  for (std::uint64_t id = 0; id < 2; ++id) {
    producers.emplace_back([&q, id] {
      for (std::uint64_t i = 0; i < per;) {
        if (q.try_push((id << 32) | i)) ++i;
      }
    });
  }
  std::uint64_t next[2] = {0, 0};
  for (std::uint64_t got = 0; got < 2 * per;) {
    auto v = q.pop();
    if (!v) continue;
    std::uint64_t id = *v >> 32, seq = *v & 0xffffffffu;
    ASSERT_LT(id, 2u);
    ASSERT_EQ(seq, next[id]);
    ++next[id];
    ++got;
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(q.size().value(), 0u);
}

TEST(BytesQueue, PushPopSizes) {
  rsl::bytes_queue q(2, 8);
  EXPECT_EQ(q.max_len(), 8u);
  EXPECT_TRUE(q.try_push("hello"));
  EXPECT_TRUE(q.push("").ok());
  EXPECT_FALSE(q.try_push("x"));
  EXPECT_EQ(q.push("123456789").status(), RSL_ERR_TOO_LARGE);
  EXPECT_EQ(q.size().value(), 2u);
  char small[2];
  EXPECT_EQ(q.pop_into(small, sizeof small).status(), RSL_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(q.try_pop(), std::optional<std::string>("hello"));
  EXPECT_EQ(q.try_pop(), std::optional<std::string>(""));
  EXPECT_EQ(q.try_pop(), std::nullopt);
}

TEST(BytesQueue, Threads) {
  rsl::bytes_queue q(16, 16);
  constexpr int n = 5000;
  std::thread t([&] {
    for (int i = 0; i < n; i++) {
      std::string m = std::to_string(i);
      while (!q.try_push(m)) std::this_thread::yield();
    }
  });
  for (int i = 0; i < n;) {
    auto m = q.try_pop();
    if (!m) { std::this_thread::yield(); continue; }
    ASSERT_EQ(*m, std::to_string(i));
    i++;
  }
  t.join();
}
