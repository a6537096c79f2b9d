// The C++ wrapper's embedded engine: start on an ephemeral port, PING over a
// socket, stats, stop, move-only RAII. Skips when io_uring is unavailable.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

#include "resilience.hpp"

namespace {
rsl_engine_config small_config() {
  rsl_engine_config c = rsl::engine::default_config();
  c.port = 0;
  c.shards = 1;
  c.pin = 0;
  return c;
}
}  // namespace

TEST(Engine, BadConfigIsRefused) {
  rsl_engine_config c = rsl::engine::default_config();
  std::strcpy(c.bind, "nowhere");
  auto r = rsl::engine::start(c);
  EXPECT_EQ(r.status(), RSL_ERR_INVALID_ARG);
  EXPECT_THROW(rsl::engine{c}, rsl::error);
  rsl::engine empty;
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.port().status(), RSL_ERR_NULL_ARG);
  EXPECT_EQ(empty.stop().status(), RSL_ERR_NULL_ARG);
}

TEST(Engine, ServesPingAndStops) {
  auto r = rsl::engine::start(small_config());
  if (r.status() == RSL_ERR_IO_URING_UNAVAILABLE) GTEST_SKIP() << "io_uring unavailable: " << rsl_last_error();
  ASSERT_TRUE(r.ok()) << rsl_last_error();
  rsl::engine e = std::move(r.value());
  std::uint16_t port = e.port().value();
  ASSERT_NE(port, 0);

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string ping = "*1\r\n$4\r\nPING\r\n";
  ASSERT_EQ(::write(fd, ping.data(), ping.size()), static_cast<ssize_t>(ping.size()));
  char buf[7] = {};
  std::size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = ::read(fd, buf + got, sizeof buf - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(std::string(buf, got), "+PONG\r\n");
  auto st = e.stats().value();
  EXPECT_EQ(st.shards, 1u);
  EXPECT_GE(st.clients_accepted, 1u);
  ::close(fd);

  rsl::engine moved = std::move(e);
  EXPECT_FALSE(e);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(moved.stop().ok());
  EXPECT_EQ(moved.stop().status(), RSL_ERR_ENGINE_STATE);
  EXPECT_EQ(moved.stats().status(), RSL_ERR_ENGINE_STATE);
  EXPECT_EQ(moved.port().value(), port);
}
