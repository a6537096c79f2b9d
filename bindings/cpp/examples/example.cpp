// Build: c++ -std=c++17 example.cpp $(pkg-config --cflags --libs resilience) -o example
#include <resilience.hpp>

#include <iostream>

int main() {
  using namespace std::chrono_literals;
  rsl::cache cache(rsl::cache_config().max_weight(64 << 20).default_ttl(60s));
  cache.insert("user:1", "alice").value();
  std::cout << "cache hit: " << cache.get("user:1").value() << "\n";

  rsl::circuit_breaker breaker(rsl::breaker_config().count_window(20).minimum_calls(10));
  try {
    int status = breaker.call([] { return 200; });  // records success, or failure if it throws
    std::cout << "call returned " << status << "\n";
  } catch (const rsl::error& e) {
    std::cout << "not called: " << e.what() << "\n";  // RSL_ERR_REJECTED while open
  }

  rsl::idempotency_store store;
  auto r = store.begin("order-42", "sha256-of-request", 30s).value();
  if (r.state == rsl::begin_result::kind::started) store.complete("order-42", r.token, "201 Created").value();
  std::cout << "replayed: " << store.begin("order-42", "sha256-of-request", 30s)->response << "\n";
}
