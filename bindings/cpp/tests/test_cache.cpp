// The C++ wrapper's cache: string_view keys, string values of any size,
// batch get, TTL, moved-from safety, threads.
#include <gtest/gtest.h>

#include <thread>

#include "resilience.hpp"

using namespace std::chrono_literals;

TEST(Cache, InsertGetRemove) {
  rsl::cache c;
  EXPECT_EQ(c.get("missing").status(), RSL_ERR_NOT_FOUND);
  EXPECT_TRUE(c.insert("user:1", "alice").ok());
  EXPECT_EQ(c.get("user:1").value(), "alice");
  EXPECT_TRUE(c.contains("user:1").value());
  EXPECT_FALSE(c.contains("user:2").value());
  std::vector<std::uint8_t> bin = {0, 1, 2, 255};
  EXPECT_TRUE(c.insert(bin, bin).ok());
  EXPECT_EQ(c.get(bin).value(), std::string("\0\1\2\xff", 4));
  EXPECT_EQ(c.size().value(), 2u);
  EXPECT_EQ(c.weight().value(), 11u + 8u);
  EXPECT_TRUE(c.remove("user:1").ok());
  EXPECT_EQ(c.remove("user:1").status(), RSL_ERR_NOT_FOUND);
  EXPECT_TRUE(c.clear().ok());
  EXPECT_EQ(c.size().value(), 0u);
  auto st = c.stats().value();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.inserts, 2u);
}

TEST(Cache, LargeValuesGrowTheBuffer) {
  rsl::cache c;
  std::string big(200000, 'v');
  big.back() = '!';
  EXPECT_TRUE(c.insert("big", big).ok());
  EXPECT_EQ(c.get("big").value(), big);
  std::string reuse;
  EXPECT_TRUE(c.get_into("big", reuse).ok());
  EXPECT_EQ(reuse, big);
  EXPECT_EQ(c.get_into("nope", reuse).status(), RSL_ERR_NOT_FOUND);
  EXPECT_TRUE(reuse.empty());
}

TEST(Cache, GetManyMixesHitsMissesAndLargeValues) {
  rsl::cache c;
  std::string large(1000, 'L');
  ASSERT_TRUE(c.insert("a", "1").ok());
  ASSERT_TRUE(c.insert("large", large).ok());
  ASSERT_TRUE(c.insert("b", "22").ok());
  auto r = c.get_many({"a", "missing", "large", "b"}).value();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0], std::optional<std::string>("1"));
  EXPECT_FALSE(r[1].has_value());
  EXPECT_EQ(r[2], std::optional<std::string>(large));  // fetched again: too big for the batch buffer
  EXPECT_EQ(r[3], std::optional<std::string>("22"));
  EXPECT_TRUE(c.get_many({}).value().empty());
}

TEST(Cache, TtlWeightAndSweep) {
  rsl::cache c(rsl::cache_config().max_weight(64).shards(1).default_ttl(50ms));
  EXPECT_TRUE(c.insert("short", "x", 1ns).ok());
  EXPECT_TRUE(c.insert("default", "x").ok());
  EXPECT_TRUE(c.insert_forever("forever", "x").ok());
  std::this_thread::sleep_for(60ms);
  EXPECT_FALSE(c.contains("short").value());
  EXPECT_FALSE(c.contains("default").value());
  EXPECT_TRUE(c.contains("forever").value());
  EXPECT_EQ(c.sweep(10).value(), 2u);
  EXPECT_EQ(c.insert("big", std::string(64, 'x')).status(), RSL_ERR_TOO_LARGE);
  EXPECT_THROW(rsl::cache(rsl::cache_config().max_weight(0)), rsl::error);
  EXPECT_THROW(rsl::cache(rsl::cache_config().shards(3)), rsl::error);
}

TEST(Cache, MovedFromIsSafe) {
  rsl::cache a;
  rsl::cache b = std::move(a);
  EXPECT_EQ(a.insert("k", "v").status(), RSL_ERR_NULL_ARG);         // NOLINT: use after move on purpose
  EXPECT_EQ(a.get("k").status(), RSL_ERR_NULL_ARG);                 // NOLINT
  EXPECT_EQ(a.get_many({"k"}).status(), RSL_ERR_NULL_ARG);          // NOLINT
  EXPECT_EQ(a.contains("k").status(), RSL_ERR_NULL_ARG);            // NOLINT
  EXPECT_EQ(a.size().status(), RSL_ERR_NULL_ARG);                   // NOLINT
  EXPECT_EQ(a.clear().status(), RSL_ERR_NULL_ARG);                  // NOLINT
  EXPECT_EQ(a.stats().status(), RSL_ERR_NULL_ARG);                  // NOLINT
  EXPECT_TRUE(b.insert("k", "v").ok());
}

TEST(Cache, ThreadsNeverSeeTornValues) {
  rsl::cache c(rsl::cache_config().max_entries(32).shards(2));
  std::vector<std::thread> ts;
  std::atomic<int> torn{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      std::string out;
      for (int i = 0; i < 20000; ++i) {
        std::string key = "k" + std::to_string((i * 7 + t) % 64);
        if (i % 3 == 0) {
          (void)c.insert(key, std::string(1 + (i + t) % 300, static_cast<char>('a' + t)));
        } else if (c.get_into(key, out)) {
          for (char ch : out) {
            if (ch != out[0]) {
              torn++;
              break;
            }
          }
        }
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_LE(c.size().value(), 32u);
}
