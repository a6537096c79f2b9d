// resilience.hpp - header-only C++17 RAII wrapper over the libresilience C ABI.
//
// - Every handle class is move-only; a moved-from object holds no handle and
//   every call on it returns RSL_ERR_NULL_ARG (or throws rsl::error), never UB.
// - Errors: calls return rsl::result<T> (value or status, no exception);
//   result::value() throws rsl::error, a std::system_error whose code() is in
//   rsl::category() and whose what() carries the failed call's
//   rsl_last_error(), read when the call returned (answers such as
//   RSL_ERR_REJECTED or RSL_ERR_EMPTY carry only the status's name).
// - Bytes go in as rsl::bytes (from std::string_view, std::string,
//   std::vector<uint8_t>, or pointer + size): a std::span-like view for C++17.
#ifndef RESILIENCE_HPP
#define RESILIENCE_HPP

#include "resilience.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace rsl {

// ---------------------------------------------------------------- errors

/// The std::error_category of rsl_status codes.
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "resilience"; }
  std::string message(int code) const override { return rsl_status_str(code); }
};

/// The category of every std::error_code made from an rsl_status.
inline const std::error_category& category() noexcept {
  static const error_category_impl instance;
  return instance;
}

/// Wraps a status as a std::error_code.
inline std::error_code make_error_code(rsl_status s) noexcept {
  return std::error_code(static_cast<int>(s), category());
}

/// The exception thrown by result::value() and by constructors. what() is
/// `detail: status name`, or the status name alone when there is no detail.
class error : public std::system_error {
 public:
  error(rsl_status s, const std::string& detail)
      : std::system_error(detail.empty() ? std::system_error(make_error_code(s))
                                         : std::system_error(make_error_code(s), detail)),
        status_(s) {}
  /// The status code.
  rsl_status status() const noexcept { return status_; }

 private:
  rsl_status status_;
};

namespace detail {
/// Statuses the C library returns as answers, without setting
/// rsl_last_error() (which then still holds an older call's message).
inline bool is_answer(rsl_status s) noexcept {
  switch (s) {
    case RSL_ERR_FULL:
    case RSL_ERR_EMPTY:
    case RSL_ERR_NOT_FOUND:
    case RSL_ERR_REJECTED:
    case RSL_ERR_TIMEOUT:
    case RSL_ERR_MISMATCH:
    case RSL_ERR_STALE:
      return true;
    default:
      return false;
  }
}

/// The detail for status `s` of the call that just returned: its
/// rsl_last_error() for a failure, nothing for RSL_OK or an answer.
inline std::string detail_of(rsl_status s) noexcept {
  if (s == RSL_OK || is_answer(s)) return std::string();
  try {
    return std::string(rsl_last_error());
  } catch (...) {  // out of memory for the copy: no detail rather than terminate
    return std::string();
  }
}
}  // namespace detail

/// Throws rsl::error for any status but RSL_OK. Call it right after the C
/// call that returned `s`: the detail is read from rsl_last_error() now.
inline void check(rsl_status s) {
  if (s != RSL_OK) throw error(s, detail::detail_of(s));
}

/// A value or a status: the error-code-returning alternative to exceptions.
template <class T>
class [[nodiscard]] result {
 public:
  result(T v) : status_(RSL_OK), value_(std::move(v)) {}  // NOLINT: implicit on purpose
  /// From the status of the call that just returned (its detail is read now).
  result(rsl_status s) : status_(s), value_(), detail_(detail::detail_of(s)) {}  // NOLINT
  /// True on RSL_OK.
  bool ok() const noexcept { return status_ == RSL_OK; }
  explicit operator bool() const noexcept { return ok(); }
  /// The status (RSL_OK when a value is held).
  rsl_status status() const noexcept { return status_; }
  /// The status as a std::error_code.
  std::error_code error_code() const noexcept { return make_error_code(status_); }
  /// The value; throws rsl::error when there is none.
  T& value() & {
    raise();
    return value_;
  }
  /// The value; throws rsl::error when there is none.
  const T& value() const& {
    raise();
    return value_;
  }
  /// The value; throws rsl::error when there is none.
  T&& value() && {
    raise();
    return std::move(value_);
  }
  /// The value, or `fallback` when there is none.
  T value_or(T fallback) const { return ok() ? value_ : fallback; }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void raise() const {
    if (status_ != RSL_OK) throw error(status_, detail_);
  }
  rsl_status status_;
  T value_;
  std::string detail_;
};

/// A result without a value.
template <>
class [[nodiscard]] result<void> {
 public:
  /// From the status of the call that just returned (its detail is read now).
  result(rsl_status s = RSL_OK) : status_(s), detail_(detail::detail_of(s)) {}  // NOLINT
  /// A status the wrapper itself decided, with its own detail.
  result(rsl_status s, const char* detail) noexcept : status_(s) {
    try {
      detail_ = detail;
    } catch (...) {
    }
  }
  bool ok() const noexcept { return status_ == RSL_OK; }
  explicit operator bool() const noexcept { return ok(); }
  rsl_status status() const noexcept { return status_; }
  std::error_code error_code() const noexcept { return make_error_code(status_); }
  /// Throws rsl::error unless RSL_OK.
  void value() const {
    if (status_ != RSL_OK) throw error(status_, detail_);
  }

 private:
  rsl_status status_;
  std::string detail_;
};

// ---------------------------------------------------------------- bytes

/// A read-only view of bytes (std::span<const uint8_t> for C++17).
class bytes {
 public:
  constexpr bytes() noexcept = default;
  bytes(const void* data, std::size_t size) noexcept
      : data_(static_cast<const std::uint8_t*>(data)), size_(size) {}
  bytes(std::string_view s) noexcept  // NOLINT: implicit on purpose
      : data_(reinterpret_cast<const std::uint8_t*>(s.data())), size_(s.size()) {}
  bytes(const std::string& s) noexcept : bytes(std::string_view(s)) {}  // NOLINT
  bytes(const char* s) noexcept : bytes(std::string_view(s)) {}         // NOLINT
  bytes(const std::vector<std::uint8_t>& v) noexcept : data_(v.data()), size_(v.size()) {}  // NOLINT
  constexpr const std::uint8_t* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Nanoseconds, the library's unit of time.
using nanos = std::chrono::nanoseconds;

/// Converts any std::chrono duration to the library's nanoseconds without
/// overflow: negative and NaN give 0; anything at or beyond UINT64_MAX ns
/// (such as `seconds::max()`, "for ever") gives UINT64_MAX, which the C
/// API reads as "no deadline" where it takes one.
template <class Rep, class Period>
inline std::uint64_t to_ns(std::chrono::duration<Rep, Period> d) noexcept {
  constexpr std::uint64_t max = UINT64_MAX;
  using r = std::ratio_divide<Period, std::nano>;  // ns per tick: r::num / r::den
  if constexpr (std::is_floating_point_v<Rep>) {
    long double ns = static_cast<long double>(d.count()) * r::num / r::den;
    if (!(ns > 0)) return 0;  // negative, zero or NaN
    if (ns >= static_cast<long double>(max)) return max;
    return static_cast<std::uint64_t>(ns);
  } else {
    if (d.count() <= 0) return 0;
    auto ticks = static_cast<std::uint64_t>(d.count());
    constexpr auto num = static_cast<std::uint64_t>(r::num);
    constexpr auto den = static_cast<std::uint64_t>(r::den);
    std::uint64_t whole = ticks / den, rest = ticks % den;
    if (whole > max / num) return max;
    std::uint64_t ns = whole * num;
    // rest < den, so rest * num / den < num; split to avoid overflow.
    std::uint64_t part = rest <= max / num ? rest * num / den : rest / den * num;
    return ns > max - part ? max : ns + part;
  }
}

namespace detail {
/// Move-only owner of a C handle, freed with `Free`.
template <class T, void (*Free)(T*)>
class handle {
 public:
  handle() noexcept = default;
  explicit handle(T* p) noexcept : p_(p) {}
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;
  handle(handle&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  handle& operator=(handle&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  ~handle() { reset(); }
  void reset() noexcept {
    if (p_) Free(std::exchange(p_, nullptr));
  }
  T* get() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};
}  // namespace detail

/// Library version string ("MAJOR.MINOR.PATCH").
inline std::string_view version() noexcept { return rsl_version(); }

/// True when the loaded library implements the ABI this header describes.
inline bool abi_compatible() noexcept { return rsl_abi_version() == RSL_ABI_VERSION; }

// ---------------------------------------------------------------- queues

/// Producing end of a wait-free SPSC queue of uint64_t payloads. One thread
/// at a time.
class spsc_producer {
 public:
  spsc_producer() noexcept = default;
  explicit spsc_producer(rsl_spsc_producer* p) noexcept : h_(p) {}
  /// Pushes one payload: RSL_ERR_FULL / RSL_ERR_CLOSED when it cannot.
  result<void> push(std::uint64_t v) noexcept { return rsl_spsc_push(h_.get(), v); }
  /// True if pushed, false if full; throws on any other error.
  bool try_push(std::uint64_t v) {
    rsl_status s = rsl_spsc_push(h_.get(), v);
    if (s == RSL_ERR_FULL) return false;
    check(s);
    return true;
  }
  /// Pushes as many of `n` payloads as fit; returns how many.
  result<std::size_t> push_many(const std::uint64_t* v, std::size_t n) noexcept {
    std::size_t pushed = 0;
    rsl_status s = rsl_spsc_push_many(h_.get(), v, n, &pushed);
    if (s != RSL_OK) return s;
    return pushed;
  }
  /// Queued payloads as seen by the producer.
  result<std::size_t> size() noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_spsc_producer_len(h_.get(), &n, nullptr);
    if (s != RSL_OK) return s;
    return n;
  }
  /// The capacity.
  result<std::size_t> capacity() noexcept {
    std::size_t c = 0;
    rsl_status s = rsl_spsc_producer_len(h_.get(), nullptr, &c);
    if (s != RSL_OK) return s;
    return c;
  }
  rsl_spsc_producer* get() const noexcept { return h_.get(); }

 private:
  detail::handle<rsl_spsc_producer, rsl_spsc_producer_free> h_;
};

/// Consuming end of a wait-free SPSC queue of uint64_t payloads. One thread
/// at a time.
class spsc_consumer {
 public:
  spsc_consumer() noexcept = default;
  explicit spsc_consumer(rsl_spsc_consumer* c) noexcept : h_(c) {}
  /// Pops one payload: RSL_ERR_EMPTY when there is none.
  result<std::uint64_t> pop() noexcept {
    std::uint64_t v = 0;
    rsl_status s = rsl_spsc_pop(h_.get(), &v);
    if (s != RSL_OK) return s;
    return v;
  }
  /// Pops up to `cap` payloads into `out`; returns how many (0 when empty).
  result<std::size_t> pop_many(std::uint64_t* out, std::size_t cap) noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_spsc_pop_many(h_.get(), out, cap, &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Queued payloads as seen by the consumer.
  result<std::size_t> size() noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_spsc_consumer_len(h_.get(), &n);
    if (s != RSL_OK) return s;
    return n;
  }
  rsl_spsc_consumer* get() const noexcept { return h_.get(); }

 private:
  detail::handle<rsl_spsc_consumer, rsl_spsc_consumer_free> h_;
};

/// Creates an SPSC queue of at least `capacity` payloads; throws rsl::error.
inline std::pair<spsc_producer, spsc_consumer> make_spsc(std::size_t capacity) {
  rsl_spsc_producer* p = nullptr;
  rsl_spsc_consumer* c = nullptr;
  check(rsl_spsc_new(capacity, &p, &c));
  return {spsc_producer(p), spsc_consumer(c)};
}

/// A lock-free MPMC queue of uint64_t payloads; thread-safe.
class mpmc_queue {
 public:
  /// Creates a queue of at least `capacity` payloads; throws rsl::error.
  explicit mpmc_queue(std::size_t capacity) {
    rsl_mpmc* q = nullptr;
    check(rsl_mpmc_new(capacity, &q));
    h_ = decltype(h_)(q);
  }
  /// Pushes one payload: RSL_ERR_FULL when full.
  result<void> push(std::uint64_t v) noexcept { return rsl_mpmc_push(h_.get(), v); }
  /// True if pushed, false if full; throws on any other error.
  bool try_push(std::uint64_t v) {
    rsl_status s = rsl_mpmc_push(h_.get(), v);
    if (s == RSL_ERR_FULL) return false;
    check(s);
    return true;
  }
  /// Pops one payload: RSL_ERR_EMPTY when empty.
  result<std::uint64_t> pop() noexcept {
    std::uint64_t v = 0;
    rsl_status s = rsl_mpmc_pop(h_.get(), &v);
    if (s != RSL_OK) return s;
    return v;
  }
  /// Pushes payloads in order until one does not fit; returns how many.
  result<std::size_t> push_many(const std::uint64_t* v, std::size_t n) noexcept {
    std::size_t pushed = 0;
    rsl_status s = rsl_mpmc_push_many(h_.get(), v, n, &pushed);
    if (s != RSL_OK) return s;
    return pushed;
  }
  /// Pops up to `cap` payloads; returns how many.
  result<std::size_t> pop_many(std::uint64_t* out, std::size_t cap) noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_mpmc_pop_many(h_.get(), out, cap, &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Approximate number of queued payloads.
  result<std::size_t> size() const noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_mpmc_len(h_.get(), &n, nullptr);
    if (s != RSL_OK) return s;
    return n;
  }
  rsl_mpmc* get() const noexcept { return h_.get(); }

 private:
  detail::handle<rsl_mpmc, rsl_mpmc_free> h_;
};

/// A lock-free MPMC queue of byte messages of at most `max_len` bytes,
/// copied in and out; thread-safe.
class bytes_queue {
 public:
  /// Creates a queue of at least `capacity` messages; throws rsl::error.
  bytes_queue(std::size_t capacity, std::size_t max_len) : max_len_(max_len) {
    rsl_bytes_queue* q = nullptr;
    check(rsl_bytes_queue_new(capacity, max_len, &q));
    h_ = decltype(h_)(q);
  }
  /// Pushes a copy of `msg`: RSL_ERR_FULL when full, RSL_ERR_TOO_LARGE when
  /// longer than max_len().
  result<void> push(std::string_view msg) noexcept {
    return rsl_bytes_queue_push(h_.get(), reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size());
  }
  /// True if pushed, false if full; throws on any other error.
  bool try_push(std::string_view msg) {
    rsl_status s = push(msg).status();
    if (s == RSL_ERR_FULL) return false;
    check(s);
    return true;
  }
  /// Pops the oldest message into `buf`, returning its length:
  /// RSL_ERR_EMPTY when empty, RSL_ERR_BUFFER_TOO_SMALL (nothing consumed)
  /// when it does not fit.
  result<std::size_t> pop_into(void* buf, std::size_t cap) noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_bytes_queue_pop(h_.get(), static_cast<std::uint8_t*>(buf), cap, &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// The oldest message, or nullopt when empty; throws on any other error.
  std::optional<std::string> try_pop() {
    std::string out(max_len_, '\0');
    std::size_t n = 0;
    rsl_status s = rsl_bytes_queue_pop(h_.get(), reinterpret_cast<std::uint8_t*>(out.data()), out.size(), &n);
    if (s == RSL_ERR_EMPTY) return std::nullopt;
    check(s);
    out.resize(n);
    return out;
  }
  /// Approximate number of queued messages.
  result<std::size_t> size() const noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_bytes_queue_len(h_.get(), &n, nullptr);
    if (s != RSL_OK) return s;
    return n;
  }
  std::size_t max_len() const noexcept { return max_len_; }
  rsl_bytes_queue* get() const noexcept { return h_.get(); }

 private:
  detail::handle<rsl_bytes_queue, rsl_bytes_queue_free> h_;
  std::size_t max_len_ = 0;
};

// ---------------------------------------------------------------- breaker

/// A breaker's state (the RSL_BREAKER_* codes).
enum class breaker_state : std::int32_t {
  closed = RSL_BREAKER_CLOSED,
  open = RSL_BREAKER_OPEN,
  half_open = RSL_BREAKER_HALF_OPEN,
  disabled = RSL_BREAKER_DISABLED,
  forced_open = RSL_BREAKER_FORCED_OPEN,
  metrics_only = RSL_BREAKER_METRICS_ONLY,
};

/// How a call went (the RSL_OUTCOME_* codes).
enum class outcome : std::int32_t {
  success = RSL_OUTCOME_SUCCESS,
  failure = RSL_OUTCOME_FAILURE,
  ignored = RSL_OUTCOME_IGNORED,
};

/// Breaker settings: rsl_breaker_config_default() with chainable setters.
class breaker_config {
 public:
  breaker_config() noexcept : c_(rsl_breaker_config_default()) {}
  /// Failure rate in percent, (0, 100], at or above which the breaker opens.
  breaker_config& failure_rate_threshold(float percent) noexcept {
    c_.failure_rate_threshold = percent;
    return *this;
  }
  /// Slow-call rate in percent, (0, 100], at or above which it opens.
  breaker_config& slow_call_rate_threshold(float percent) noexcept {
    c_.slow_call_rate_threshold = percent;
    return *this;
  }
  /// A call strictly longer than this is slow.
  template <class Rep, class Period>
  breaker_config& slow_call_duration_threshold(std::chrono::duration<Rep, Period> d) noexcept {
    c_.slow_call_duration_threshold_ns = to_ns(d);
    return *this;
  }
  /// Probe calls let through in half-open (1..=1023).
  breaker_config& permitted_calls_in_half_open(std::uint32_t n) noexcept {
    c_.permitted_calls_in_half_open = n;
    return *this;
  }
  /// Longest time in half-open before re-opening (0: for ever).
  template <class Rep, class Period>
  breaker_config& max_wait_in_half_open(std::chrono::duration<Rep, Period> d) noexcept {
    c_.max_wait_in_half_open_ns = to_ns(d);
    return *this;
  }
  /// A window of the last `calls` calls.
  breaker_config& count_window(std::uint32_t calls) noexcept {
    c_.window_type = RSL_BREAKER_WINDOW_COUNT;
    c_.window_size = calls;
    return *this;
  }
  /// A window of the calls of the last `seconds` seconds.
  breaker_config& time_window(std::uint32_t seconds) noexcept {
    c_.window_type = RSL_BREAKER_WINDOW_TIME;
    c_.window_size = seconds;
    return *this;
  }
  /// Calls needed in the window before a rate is computed.
  breaker_config& minimum_calls(std::uint32_t n) noexcept {
    c_.minimum_calls = n;
    return *this;
  }
  /// Time in open before probes are let through.
  template <class Rep, class Period>
  breaker_config& wait_in_open(std::chrono::duration<Rep, Period> d) noexcept {
    c_.wait_in_open_ns = to_ns(d);
    return *this;
  }
  /// Whether poll() moves open to half-open when the wait is over.
  breaker_config& automatic_transition(bool on) noexcept {
    c_.automatic_transition = on ? 1u : 0u;
    return *this;
  }
  /// The C struct.
  const rsl_breaker_config* get() const noexcept { return &c_; }
  rsl_breaker_config& raw() noexcept { return c_; }

 private:
  rsl_breaker_config c_;
};

/// Permission to make one call, from circuit_breaker::try_acquire. Records
/// exactly once: with success()/failure()/ignore()/record(), or as ignored
/// when destroyed without a result. It refers to its breaker without owning
/// it: do not let it outlive the breaker. Move-only.
class permit_guard {
 public:
  permit_guard() noexcept = default;
  permit_guard(rsl_breaker* b, rsl_permit p) noexcept : b_(b), p_(p) {}
  permit_guard(const permit_guard&) = delete;
  permit_guard& operator=(const permit_guard&) = delete;
  permit_guard(permit_guard&& o) noexcept : b_(std::exchange(o.b_, nullptr)), p_(o.p_) {}
  permit_guard& operator=(permit_guard&& o) noexcept {
    if (this != &o) {
      (void)finish(outcome::ignored, 0);
      b_ = std::exchange(o.b_, nullptr);
      p_ = o.p_;
    }
    return *this;
  }
  ~permit_guard() { (void)finish(outcome::ignored, 0); }

  /// Records `o` for a call that took `d`. RSL_ERR_STALE when the state
  /// changed since the permit was issued; RSL_ERR_NULL_ARG once recorded.
  template <class Rep, class Period>
  result<void> record(outcome o, std::chrono::duration<Rep, Period> d) noexcept {
    return finish(o, to_ns(d));
  }
  /// Records a success that took `d`.
  template <class Rep, class Period>
  result<void> success(std::chrono::duration<Rep, Period> d) noexcept {
    return finish(outcome::success, to_ns(d));
  }
  /// Records a failure that took `d`.
  template <class Rep, class Period>
  result<void> failure(std::chrono::duration<Rep, Period> d) noexcept {
    return finish(outcome::failure, to_ns(d));
  }
  /// Records nothing (gives a half-open probe slot back).
  result<void> ignore() noexcept { return finish(outcome::ignored, 0); }
  /// Gives up the permit as plain data, recording nothing: record it later
  /// with circuit_breaker::record.
  rsl_permit release() noexcept {
    b_ = nullptr;
    return p_;
  }
  /// Whether the permit is still to be recorded.
  explicit operator bool() const noexcept { return b_ != nullptr; }

 private:
  result<void> finish(outcome o, std::uint64_t ns) noexcept {
    rsl_breaker* b = std::exchange(b_, nullptr);
    if (!b) return {RSL_ERR_NULL_ARG, "the breaker permit was already recorded (or moved from)"};
    return rsl_breaker_record(b, p_, static_cast<std::int32_t>(o), ns);
  }
  rsl_breaker* b_ = nullptr;
  rsl_permit p_{};
};

/// A circuit breaker (Resilience4j semantics); thread-safe. Move-only; the
/// underlying breaker is reference counted: share() makes another owner.
class circuit_breaker {
 public:
  /// An empty handle (every call returns RSL_ERR_NULL_ARG).
  circuit_breaker() noexcept = default;
  /// Creates a closed breaker; throws rsl::error for a bad config.
  explicit circuit_breaker(const breaker_config& config) {
    rsl_breaker* b = nullptr;
    check(rsl_breaker_new(config.get(), &b));
    h_ = decltype(h_)(b);
  }
  /// Adopts one reference of a C handle.
  explicit circuit_breaker(rsl_breaker* adopt) noexcept : h_(adopt) {}

  /// Another owner of the same breaker.
  result<circuit_breaker> share() const noexcept {
    rsl_breaker* b = nullptr;
    rsl_status s = rsl_breaker_clone(h_.get(), &b);
    if (s != RSL_OK) return s;
    return circuit_breaker(b);
  }

  /// Asks to make a call now: a guard, or RSL_ERR_REJECTED with the time to
  /// wait in `*retry_after` (if given).
  result<permit_guard> try_acquire(nanos* retry_after = nullptr) noexcept {
    rsl_permit p{};
    std::uint64_t retry = 0;
    rsl_status s = rsl_breaker_try_acquire(h_.get(), &p, &retry);
    if (s == RSL_ERR_REJECTED && retry_after) *retry_after = to_nanos(retry);
    if (s != RSL_OK) return s;
    return permit_guard(h_.get(), p);
  }
  /// try_acquire at time `now_ns` (CLOCK_MONOTONIC ns).
  result<permit_guard> try_acquire_at(std::uint64_t now_ns, nanos* retry_after = nullptr) noexcept {
    rsl_permit p{};
    std::uint64_t retry = 0;
    rsl_status s = rsl_breaker_try_acquire_at(h_.get(), now_ns, &p, &retry);
    if (s == RSL_ERR_REJECTED && retry_after) *retry_after = to_nanos(retry);
    if (s != RSL_OK) return s;
    return permit_guard(h_.get(), p);
  }
  /// Records a raw permit (from permit_guard::release).
  template <class Rep, class Period>
  result<void> record(rsl_permit p, outcome o, std::chrono::duration<Rep, Period> d) noexcept {
    return rsl_breaker_record(h_.get(), p, static_cast<std::int32_t>(o), to_ns(d));
  }

  /// Runs `f()` if permitted and records a success, or a failure if it
  /// throws (the exception is rethrown); the duration is measured. Throws
  /// rsl::error with RSL_ERR_REJECTED when the breaker refuses.
  template <class F>
  auto call(F&& f) -> decltype(f()) {
    permit_guard g = try_acquire().value();
    auto start = std::chrono::steady_clock::now();
    try {
      if constexpr (std::is_void_v<decltype(f())>) {
        std::forward<F>(f)();
        (void)g.success(std::chrono::steady_clock::now() - start);
      } else {
        // decltype(auto): a reference result stays a reference to the
        // caller's object (never to a local), a value is moved out.
        decltype(auto) v = std::forward<F>(f)();
        (void)g.success(std::chrono::steady_clock::now() - start);
        return std::forward<decltype(f())>(v);
      }
    } catch (...) {
      (void)g.failure(std::chrono::steady_clock::now() - start);
      throw;
    }
  }

  /// The current state.
  result<breaker_state> state() const noexcept {
    std::int32_t st = 0;
    rsl_status s = rsl_breaker_state(h_.get(), &st);
    if (s != RSL_OK) return s;
    return static_cast<breaker_state>(st);
  }
  /// A metrics snapshot.
  result<rsl_breaker_metrics> metrics() const noexcept {
    rsl_breaker_metrics m{};
    rsl_status s = rsl_breaker_get_metrics(h_.get(), &m);
    if (s != RSL_OK) return s;
    return m;
  }
  /// How many times the breaker has entered `st`.
  result<std::uint64_t> transitions_to(breaker_state st) const noexcept {
    std::uint64_t n = 0;
    rsl_status s = rsl_breaker_transitions_to(h_.get(), static_cast<std::int32_t>(st), &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Moves to `to` (a fresh instance of it); returns the new generation.
  result<std::uint64_t> transition_to(breaker_state to) noexcept {
    std::uint64_t gen = 0;
    rsl_status s = rsl_breaker_transition_to(h_.get(), static_cast<std::int32_t>(to), &gen);
    if (s != RSL_OK) return s;
    return gen;
  }
  /// Rejects every call until the next manual transition.
  result<std::uint64_t> force_open() noexcept { return transition_to(breaker_state::forced_open); }
  /// Lets every call through, recording nothing.
  result<std::uint64_t> disable() noexcept { return transition_to(breaker_state::disabled); }
  /// Records calls but never opens.
  result<std::uint64_t> metrics_only() noexcept { return transition_to(breaker_state::metrics_only); }
  /// Closed, with an empty window.
  result<std::uint64_t> reset() noexcept { return transition_to(breaker_state::closed); }
  /// Drives timed transitions; returns when to call again (UINT64_MAX: none).
  result<std::uint64_t> poll() noexcept {
    std::uint64_t next = 0;
    rsl_status s = rsl_breaker_poll(h_.get(), &next);
    if (s != RSL_OK) return s;
    return next;
  }

  /// Calls `f` after every state change, on the thread that caused it
  /// (see rsl_breaker_on_state_change). Exceptions thrown by `f` are
  /// swallowed: they cannot cross the C library. `f` lives as long as the
  /// breaker (registry included).
  result<void> on_state_change(std::function<void(const rsl_breaker_transition&)> f) {
    using fn = std::function<void(const rsl_breaker_transition&)>;
    auto owned = std::make_unique<fn>(std::move(f));
    rsl_status s = rsl_breaker_on_state_change(h_.get(), &trampoline, owned.get(), &destroy);
    if (s == RSL_OK) owned.release();
    return s;
  }

  rsl_breaker* get() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  static nanos to_nanos(std::uint64_t ns) noexcept {
    return ns > static_cast<std::uint64_t>(nanos::max().count()) ? nanos::max()
                                                                   : nanos(static_cast<nanos::rep>(ns));
  }
  static void trampoline(void* user, const rsl_breaker_transition* t) noexcept {
    try {
      (*static_cast<std::function<void(const rsl_breaker_transition&)>*>(user))(*t);
    } catch (...) {
    }
  }
  static void destroy(void* user) noexcept {
    delete static_cast<std::function<void(const rsl_breaker_transition&)>*>(user);
  }
  detail::handle<rsl_breaker, rsl_breaker_free> h_;
};

/// Circuit breakers by name, at most `max_entries`; thread-safe. Move-only.
class breaker_registry {
 public:
  /// Throws rsl::error when `max_entries` is 0.
  explicit breaker_registry(std::size_t max_entries) {
    rsl_breaker_registry* r = nullptr;
    check(rsl_breaker_registry_new(max_entries, &r));
    h_ = decltype(h_)(r);
  }
  /// The breaker named `name`, created with the default config if absent.
  result<circuit_breaker> get(bytes name) noexcept { return get_impl(name, nullptr); }
  /// The breaker named `name`, created with `config` if absent.
  result<circuit_breaker> get(bytes name, const breaker_config& config) noexcept {
    return get_impl(name, config.get());
  }
  /// The breaker named `name` if present (RSL_ERR_NOT_FOUND otherwise).
  result<circuit_breaker> find(bytes name) noexcept {
    rsl_breaker* b = nullptr;
    rsl_status s = rsl_breaker_registry_find(h_.get(), name.data(), name.size(), &b);
    if (s != RSL_OK) return s;
    return circuit_breaker(b);
  }
  /// Removes `name` (RSL_ERR_NOT_FOUND if absent); holders keep a breaker.
  result<void> remove(bytes name) noexcept {
    return rsl_breaker_registry_remove(h_.get(), name.data(), name.size());
  }
  /// The number of breakers held.
  result<std::size_t> size() const noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_breaker_registry_len(h_.get(), &n);
    if (s != RSL_OK) return s;
    return n;
  }
  rsl_breaker_registry* get() const noexcept { return h_.get(); }

 private:
  result<circuit_breaker> get_impl(bytes name, const rsl_breaker_config* c) noexcept {
    rsl_breaker* b = nullptr;
    rsl_status s = rsl_breaker_registry_get(h_.get(), name.data(), name.size(), c, &b);
    if (s != RSL_OK) return s;
    return circuit_breaker(b);
  }
  detail::handle<rsl_breaker_registry, rsl_breaker_registry_free> h_;
};

// ---------------------------------------------------------------- idempotency

/// Idempotency store settings: rsl_idem_config_default() with setters.
class idempotency_config {
 public:
  idempotency_config() noexcept : c_(rsl_idem_config_default()) {}
  /// Byte budget for all records.
  idempotency_config& max_bytes(std::uint64_t n) noexcept {
    c_.max_bytes = n;
    return *this;
  }
  /// How long completed responses are replayed.
  template <class Rep, class Period>
  idempotency_config& retention(std::chrono::duration<Rep, Period> d) noexcept {
    c_.retention_ns = to_ns(d);
    return *this;
  }
  /// Number of shards (a power of two).
  idempotency_config& shards(std::uint64_t n) noexcept {
    c_.shards = n;
    return *this;
  }
  /// Longest key, fingerprint and response accepted.
  idempotency_config& limits(std::uint64_t key, std::uint64_t fingerprint, std::uint64_t response) noexcept {
    c_.max_key_len = key;
    c_.max_fingerprint_len = fingerprint;
    c_.max_response_len = response;
    return *this;
  }
  const rsl_idem_config* get() const noexcept { return &c_; }
  rsl_idem_config& raw() noexcept { return c_; }

 private:
  rsl_idem_config c_;
};

/// The answer of idempotency_store::begin (RSL_ERR_MISMATCH is a status).
struct begin_result {
  /// What the caller must do.
  enum class kind { started, in_progress, completed };
  kind state = kind::started;
  /// Started by replacing a stale in-progress record.
  bool takeover = false;
  /// The owner token (started only).
  std::uint64_t token = 0;
  /// Time left on the owner's lease (in progress only).
  nanos retry_after{0};
  /// The stored response (completed only).
  std::string response;
};

/// An idempotency-key store; thread-safe. Move-only.
class idempotency_store {
 public:
  /// Throws rsl::error for a bad config.
  explicit idempotency_store(const idempotency_config& config = idempotency_config()) {
    rsl_idem* s = nullptr;
    check(rsl_idem_new(config.get(), &s));
    h_ = decltype(h_)(s);
  }
  /// Claims `key` for the request fingerprinted `fingerprint` with a lease
  /// of `lease`, or answers from its record. RSL_ERR_MISMATCH when the key
  /// was used for another request; RSL_ERR_FULL to shed load.
  template <class Rep, class Period>
  result<begin_result> begin(bytes key, bytes fingerprint, std::chrono::duration<Rep, Period> lease) {
    return begin_impl(key, fingerprint, to_ns(lease), nullptr);
  }
  /// begin at time `now_ns`.
  template <class Rep, class Period>
  result<begin_result> begin_at(bytes key, bytes fingerprint, std::chrono::duration<Rep, Period> lease,
                                std::uint64_t now_ns) {
    return begin_impl(key, fingerprint, to_ns(lease), &now_ns);
  }
  /// Stores `response` for `key` if `token` owns it.
  result<void> complete(bytes key, std::uint64_t token, bytes response) noexcept {
    return rsl_idem_complete(h_.get(), key.data(), key.size(), token, response.data(), response.size());
  }
  /// complete at `now_ns`, replayed for `retention` (0: the configured one).
  template <class Rep, class Period>
  result<void> complete_at(bytes key, std::uint64_t token, bytes response,
                           std::chrono::duration<Rep, Period> retention, std::uint64_t now_ns) noexcept {
    return rsl_idem_complete_at(h_.get(), key.data(), key.size(), token, response.data(), response.size(),
                                to_ns(retention), now_ns);
  }
  /// Releases `key` so that a retry starts afresh.
  result<void> abandon(bytes key, std::uint64_t token) noexcept {
    return rsl_idem_abandon(h_.get(), key.data(), key.size(), token);
  }
  /// Removes up to `max` expired records; returns how many.
  result<std::size_t> sweep(std::size_t max) noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_idem_sweep(h_.get(), max, &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Counters and occupancy.
  result<rsl_idem_stats> stats() const noexcept {
    rsl_idem_stats st{};
    rsl_status s = rsl_idem_get_stats(h_.get(), &st);
    if (s != RSL_OK) return s;
    return st;
  }
  rsl_idem* get() const noexcept { return h_.get(); }

 private:
  result<begin_result> begin_impl(bytes key, bytes fp, std::uint64_t lease, const std::uint64_t* now) {
    begin_result r;
    r.response.resize(256);
    for (;;) {
      std::int32_t state = 0;
      std::uint64_t retry = 0;
      std::size_t len = 0;
      auto* buf = reinterpret_cast<std::uint8_t*>(r.response.data());
      rsl_status s = now ? rsl_idem_begin_at(h_.get(), key.data(), key.size(), fp.data(), fp.size(), lease, *now,
                                             &state, &r.token, &retry, buf, r.response.size(), &len)
                         : rsl_idem_begin(h_.get(), key.data(), key.size(), fp.data(), fp.size(), lease, &state,
                                          &r.token, &retry, buf, r.response.size(), &len);
      if (s == RSL_ERR_BUFFER_TOO_SMALL) {
        r.response.resize(len);  // the response is larger: ask again
        continue;
      }
      if (s != RSL_OK) return s;
      r.response.resize(len);
      r.retry_after = nanos(static_cast<nanos::rep>(retry));
      r.takeover = state == RSL_IDEM_STARTED_TAKEOVER;
      r.state = state == RSL_IDEM_IN_PROGRESS ? begin_result::kind::in_progress
                : state == RSL_IDEM_COMPLETED ? begin_result::kind::completed
                                              : begin_result::kind::started;
      return r;
    }
  }
  detail::handle<rsl_idem, rsl_idem_free> h_;
};

// ---------------------------------------------------------------- cache

/// Cache settings: rsl_cache_config_default() with setters.
class cache_config {
 public:
  cache_config() noexcept : c_(rsl_cache_config_default()) {}
  /// Most entries (0: no count limit).
  cache_config& max_entries(std::uint64_t n) noexcept {
    c_.max_entries = n;
    return *this;
  }
  /// Most bytes, key + value summed (0: no weight limit).
  cache_config& max_weight(std::uint64_t bytes) noexcept {
    c_.max_weight = bytes;
    return *this;
  }
  /// TTL of entries inserted without one.
  template <class Rep, class Period>
  cache_config& default_ttl(std::chrono::duration<Rep, Period> d) noexcept {
    c_.default_ttl_ns = to_ns(d);
    return *this;
  }
  /// Number of shards (a power of two; 0: automatic).
  cache_config& shards(std::uint64_t n) noexcept {
    c_.shards = n;
    return *this;
  }
  const rsl_cache_config* get() const noexcept { return &c_; }
  rsl_cache_config& raw() noexcept { return c_; }

 private:
  rsl_cache_config c_;
};

/// A cache of byte keys to byte values with TTL; thread-safe. Move-only.
class cache {
 public:
  /// Throws rsl::error for a bad config.
  explicit cache(const cache_config& config = cache_config()) {
    rsl_cache* c = nullptr;
    check(rsl_cache_new(config.get(), &c));
    h_ = decltype(h_)(c);
  }
  /// A copy of the value of `key` (RSL_ERR_NOT_FOUND when absent).
  result<std::string> get(bytes key) const {
    std::string out;
    result<void> r = get_into(key, out);
    if (!r) return r.status();
    return out;
  }
  /// Copies the value of `key` into `out`, reusing its capacity.
  result<void> get_into(bytes key, std::string& out) const {
    if (out.capacity() < 64) out.reserve(64);
    out.resize(out.capacity());
    for (;;) {
      std::size_t len = 0;
      rsl_status s = rsl_cache_get(h_.get(), key.data(), key.size(), reinterpret_cast<std::uint8_t*>(out.data()),
                                   out.size(), &len);
      if (s == RSL_ERR_BUFFER_TOO_SMALL) {
        out.resize(len);  // the value is larger: ask again
        continue;
      }
      out.resize(s == RSL_OK ? len : 0);
      return s;
    }
  }
  /// Looks up many keys in one library call: each value or std::nullopt.
  result<std::vector<std::optional<std::string>>> get_many(const std::vector<std::string_view>& keys) const {
    std::size_t n = keys.size();
    std::vector<const std::uint8_t*> ptrs(n);
    std::vector<std::size_t> lens(n), offs(n), vlens(n);
    std::vector<std::int32_t> st(n);
    for (std::size_t i = 0; i < n; ++i) {
      ptrs[i] = reinterpret_cast<const std::uint8_t*>(keys[i].data());
      lens[i] = keys[i].size();
    }
    std::vector<std::uint8_t> buf(64 * n);
    rsl_status s = rsl_cache_get_many(h_.get(), ptrs.data(), lens.data(), n, buf.data(), buf.size(), offs.data(),
                                      vlens.data(), st.data());
    if (s != RSL_OK) return s;
    std::vector<std::optional<std::string>> out(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (st[i] == RSL_OK) {
        out[i].emplace(reinterpret_cast<const char*>(buf.data()) + offs[i], vlens[i]);
      } else if (st[i] == RSL_ERR_BUFFER_TOO_SMALL) {
        auto v = get(keys[i]);  // too big for the shared buffer: one more call
        if (v) out[i] = std::move(*v);
      } else if (st[i] != RSL_ERR_NOT_FOUND) {
        return static_cast<rsl_status>(st[i]);
      }
    }
    return out;
  }
  /// Stores `key -> value` with the cache's default TTL.
  result<void> insert(bytes key, bytes value) noexcept {
    return rsl_cache_insert(h_.get(), key.data(), key.size(), value.data(), value.size(), RSL_CACHE_TTL_DEFAULT);
  }
  /// Stores `key -> value`, expiring after `ttl`.
  template <class Rep, class Period>
  result<void> insert(bytes key, bytes value, std::chrono::duration<Rep, Period> ttl) noexcept {
    std::uint64_t ns = to_ns(ttl);
    if (ns == RSL_CACHE_TTL_DEFAULT) ns = 1;  // a zero TTL: expire as soon as possible
    return rsl_cache_insert(h_.get(), key.data(), key.size(), value.data(), value.size(), ns);
  }
  /// Stores `key -> value` without expiry, whatever the default TTL.
  result<void> insert_forever(bytes key, bytes value) noexcept {
    return rsl_cache_insert(h_.get(), key.data(), key.size(), value.data(), value.size(), RSL_CACHE_TTL_NEVER);
  }
  /// Removes `key` (RSL_ERR_NOT_FOUND when absent).
  result<void> remove(bytes key) noexcept { return rsl_cache_remove(h_.get(), key.data(), key.size()); }
  /// Whether `key` has a live entry.
  result<bool> contains(bytes key) const noexcept {
    bool present = false;
    rsl_status s = rsl_cache_contains(h_.get(), key.data(), key.size(), &present);
    if (s != RSL_OK) return s;
    return present;
  }
  /// Entries held.
  result<std::size_t> size() const noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_cache_len(h_.get(), &n, nullptr);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Bytes held.
  result<std::uint64_t> weight() const noexcept {
    std::uint64_t w = 0;
    rsl_status s = rsl_cache_len(h_.get(), nullptr, &w);
    if (s != RSL_OK) return s;
    return w;
  }
  /// Removes every entry.
  result<void> clear() noexcept { return rsl_cache_clear(h_.get()); }
  /// Counters and occupancy.
  result<rsl_cache_stats> stats() const noexcept {
    rsl_cache_stats st{};
    rsl_status s = rsl_cache_get_stats(h_.get(), &st);
    if (s != RSL_OK) return s;
    return st;
  }
  /// Removes up to `max` expired entries; returns how many.
  result<std::size_t> sweep(std::size_t max) noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_cache_sweep(h_.get(), max, &n);
    if (s != RSL_OK) return s;
    return n;
  }
  rsl_cache* get() const noexcept { return h_.get(); }

 private:
  detail::handle<rsl_cache, rsl_cache_free> h_;
};

// ---------------------------------------------------------------- rate limits
// token_bucket, keyed_limiter, bulkhead (RAII permit), adaptive_limiter (RAII
// token). A limiter's denial is an answer: acquire() returns a decision with
// allowed() false, not an error status.

namespace detail {
/// Library nanoseconds (UINT64_MAX: none) as std::chrono, saturating.
inline nanos limit_nanos(std::uint64_t ns) noexcept {
  return ns > static_cast<std::uint64_t>(nanos::max().count()) ? nanos::max()
                                                                 : nanos(static_cast<nanos::rep>(ns));
}
}  // namespace detail

/// Why a decision came out as it did (RSL_REASON_*).
enum class limit_reason : std::int32_t {
  allowed = RSL_REASON_ALLOWED,
  untracked = RSL_REASON_UNTRACKED,
  limited = RSL_REASON_LIMITED,
  exceeds_limit = RSL_REASON_EXCEEDS_LIMIT,
  table_full = RSL_REASON_TABLE_FULL,
};

/// The answer to an acquire: redis-cell's five facts and a reason.
class decision {
 public:
  decision() noexcept : d_{0, 0, RSL_RETRY_AFTER_NONE, 0, RSL_REASON_LIMITED, false, {0, 0, 0}} {}
  explicit decision(const rsl_decision& d) noexcept : d_(d) {}
  /// Whether the tokens were granted.
  bool allowed() const noexcept { return d_.allowed; }
  explicit operator bool() const noexcept { return d_.allowed; }
  /// Tokens in a full bucket.
  std::uint64_t limit() const noexcept { return d_.limit; }
  /// Tokens left.
  std::uint64_t remaining() const noexcept { return d_.remaining; }
  /// Whether waiting can help (denied with limit_reason::limited).
  bool has_retry_after() const noexcept { return d_.retry_after_ns != RSL_RETRY_AFTER_NONE; }
  /// How long until the same request would be allowed (nanos::max() when
  /// has_retry_after() is false).
  nanos retry_after() const noexcept { return detail::limit_nanos(d_.retry_after_ns); }
  /// How long until the bucket is full again.
  nanos reset_after() const noexcept { return detail::limit_nanos(d_.reset_after_ns); }
  /// Why.
  limit_reason reason() const noexcept { return static_cast<limit_reason>(d_.reason); }
  /// The C struct.
  const rsl_decision& raw() const noexcept { return d_; }

 private:
  rsl_decision d_;
};

/// A token bucket (GCRA on one atomic word); thread-safe, lock-free.
class token_bucket {
 public:
  /// An empty handle (every call returns RSL_ERR_NULL_ARG).
  token_bucket() noexcept = default;
  /// A full bucket; throws rsl::error for a bad config.
  explicit token_bucket(const rsl_limiter_config& config) {
    rsl_limiter* l = nullptr;
    check(rsl_limiter_new(&config, &l));
    h_ = decltype(h_)(l);
  }
  /// `count` tokens per `period` in a bucket of `max_burst + 1`; throws
  /// rsl::error for a bad quota.
  template <class Rep, class Period>
  token_bucket(std::uint64_t max_burst, std::uint64_t count, std::chrono::duration<Rep, Period> period)
      : token_bucket(config(max_burst, count, to_ns(period))) {}
  /// The error-code alternative to the constructor.
  static result<token_bucket> make(const rsl_limiter_config& config) noexcept {
    rsl_limiter* l = nullptr;
    rsl_status s = rsl_limiter_new(&config, &l);
    if (s != RSL_OK) return s;
    return token_bucket(l);
  }
  /// Adopts a C handle.
  explicit token_bucket(rsl_limiter* adopt) noexcept : h_(adopt) {}

  /// Takes `quantity` tokens now if they are there.
  result<decision> acquire(std::uint64_t quantity = 1) noexcept {
    rsl_decision d{};
    rsl_status s = rsl_limiter_acquire(h_.get(), quantity, &d);
    if (s != RSL_OK) return s;
    return decision(d);
  }
  /// Takes `quantity` tokens at `now_ns` (CLOCK_MONOTONIC ns).
  result<decision> acquire_at(std::uint64_t quantity, std::uint64_t now_ns) noexcept {
    rsl_decision d{};
    rsl_status s = rsl_limiter_acquire_at(h_.get(), quantity, now_ns, &d);
    if (s != RSL_OK) return s;
    return decision(d);
  }
  /// True if `quantity` tokens were taken now; throws rsl::error on a bad handle.
  bool try_acquire(std::uint64_t quantity = 1) {
    // rsl_limiter_check: the same grant as acquire, without the decision.
    rsl_status s = rsl_limiter_check(h_.get(), quantity, nullptr);
    if (s == RSL_ERR_REJECTED) return false;
    rsl::check(s);
    return true;
  }
  /// What acquire would answer now, without taking anything.
  result<decision> peek(std::uint64_t quantity = 1) const noexcept {
    rsl_decision d{};
    rsl_status s = rsl_limiter_peek(h_.get(), quantity, &d);
    if (s != RSL_OK) return s;
    return decision(d);
  }
  /// What acquire_at would answer, without taking anything.
  result<decision> peek_at(std::uint64_t quantity, std::uint64_t now_ns) const noexcept {
    rsl_decision d{};
    rsl_status s = rsl_limiter_peek_at(h_.get(), quantity, now_ns, &d);
    if (s != RSL_OK) return s;
    return decision(d);
  }
  /// Refills the bucket.
  result<void> reset() noexcept { return rsl_limiter_reset(h_.get()); }
  /// The quota.
  result<rsl_quota> quota() const noexcept {
    rsl_quota q{};
    rsl_status s = rsl_limiter_get_quota(h_.get(), &q);
    if (s != RSL_OK) return s;
    return q;
  }
  rsl_limiter* get() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  static rsl_limiter_config config(std::uint64_t max_burst, std::uint64_t count, std::uint64_t period_ns) {
    rsl_limiter_config c = rsl_limiter_config_default();
    c.quota = rsl_quota{max_burst, count, period_ns};
    return c;
  }
  detail::handle<rsl_limiter, rsl_limiter_free> h_;
};

/// Token buckets by byte key, at most `max_keys` keys; thread-safe.
class keyed_limiter {
 public:
  /// An empty handle (every call returns RSL_ERR_NULL_ARG).
  keyed_limiter() noexcept = default;
  /// An empty limiter; throws rsl::error for a bad config.
  explicit keyed_limiter(const rsl_keyed_limiter_config& config) {
    rsl_keyed_limiter* l = nullptr;
    check(rsl_keyed_limiter_new(&config, &l));
    h_ = decltype(h_)(l);
  }
  /// The error-code alternative to the constructor.
  static result<keyed_limiter> make(const rsl_keyed_limiter_config& config) noexcept {
    rsl_keyed_limiter* l = nullptr;
    rsl_status s = rsl_keyed_limiter_new(&config, &l);
    if (s != RSL_OK) return s;
    return keyed_limiter(l);
  }
  /// Adopts a C handle.
  explicit keyed_limiter(rsl_keyed_limiter* adopt) noexcept : h_(adopt) {}

  /// Takes `quantity` tokens from `key`'s bucket now.
  result<decision> acquire(bytes key, std::uint64_t quantity = 1) noexcept {
    rsl_decision d{};
    rsl_status s = rsl_keyed_limiter_acquire(h_.get(), key.data(), key.size(), quantity, &d);
    if (s != RSL_OK) return s;
    return decision(d);
  }
  /// Takes `quantity` tokens from `key`'s bucket at `now_ns`.
  result<decision> acquire_at(bytes key, std::uint64_t quantity, std::uint64_t now_ns) noexcept {
    rsl_decision d{};
    rsl_status s = rsl_keyed_limiter_acquire_at(h_.get(), key.data(), key.size(), quantity, now_ns, &d);
    if (s != RSL_OK) return s;
    return decision(d);
  }
  /// True if `quantity` tokens were taken from `key`'s bucket now; throws
  /// rsl::error on bad input.
  bool try_acquire(bytes key, std::uint64_t quantity = 1) {
    rsl_status s = rsl_keyed_limiter_check(h_.get(), key.data(), key.size(), quantity, nullptr);
    if (s == RSL_ERR_REJECTED) return false;
    rsl::check(s);
    return true;
  }
  /// Takes `quantity` tokens from each key's bucket in one call (one clock
  /// read); decision i is for keys[i]. `now_ns` 0 reads the clock.
  result<std::vector<decision>> acquire_many(const std::vector<bytes>& keys, std::uint64_t quantity = 1,
                                             std::uint64_t now_ns = 0) {
    std::vector<const std::uint8_t*> ptrs(keys.size());
    std::vector<std::size_t> lens(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      ptrs[i] = keys[i].data();
      lens[i] = keys[i].size();
    }
    std::vector<rsl_decision> raw(keys.size());
    rsl_status s = acquire_many(ptrs.data(), lens.data(), keys.size(), quantity, now_ns, raw.data());
    if (s != RSL_OK) return s;
    return std::vector<decision>(raw.begin(), raw.end());
  }
  /// The C batch call as is (`now_ns` 0 reads the clock).
  rsl_status acquire_many(const std::uint8_t* const* keys, const std::size_t* key_lens, std::size_t n,
                          std::uint64_t quantity, std::uint64_t now_ns, rsl_decision* out) noexcept {
    return now_ns == 0 ? rsl_keyed_limiter_acquire_many(h_.get(), keys, key_lens, n, quantity, out)
                       : rsl_keyed_limiter_acquire_many_at(h_.get(), keys, key_lens, n, quantity, now_ns, out);
  }
  /// Drops every key whose bucket has refilled now; returns how many.
  result<std::size_t> reclaim() noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_keyed_limiter_reclaim(h_.get(), &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Drops every key whose bucket has refilled at `now_ns`; returns how many.
  result<std::size_t> reclaim_at(std::uint64_t now_ns) noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_keyed_limiter_reclaim_at(h_.get(), now_ns, &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Keys tracked now.
  result<std::size_t> size() const noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_keyed_limiter_len(h_.get(), &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Counters.
  result<rsl_keyed_limiter_stats> stats() const noexcept {
    rsl_keyed_limiter_stats st{};
    rsl_status s = rsl_keyed_limiter_get_stats(h_.get(), &st);
    if (s != RSL_OK) return s;
    return st;
  }
  rsl_keyed_limiter* get() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  detail::handle<rsl_keyed_limiter, rsl_keyed_limiter_free> h_;
};

/// A concurrency limit: at most max_concurrent permits; thread-safe.
class bulkhead {
 public:
  /// A held permit, returned when destroyed (or by release()). Move-only;
  /// must not outlive its bulkhead.
  class permit {
   public:
    permit() noexcept = default;
    permit(const permit&) = delete;
    permit& operator=(const permit&) = delete;
    permit(permit&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
    permit& operator=(permit&& o) noexcept {
      if (this != &o) {
        (void)release();
        b_ = std::exchange(o.b_, nullptr);
      }
      return *this;
    }
    ~permit() { (void)release(); }
    /// Returns the permit now (RSL_ERR_NULL_ARG if none is held).
    result<void> release() noexcept {
      if (!b_) return {RSL_ERR_NULL_ARG, "the bulkhead permit was already released (or moved from)"};
      return rsl_bulkhead_release(std::exchange(b_, nullptr));
    }
    /// Whether a permit is held.
    explicit operator bool() const noexcept { return b_ != nullptr; }

   private:
    friend class bulkhead;
    explicit permit(rsl_bulkhead* b) noexcept : b_(b) {}
    rsl_bulkhead* b_ = nullptr;
  };

  /// An empty handle (every call returns RSL_ERR_NULL_ARG).
  bulkhead() noexcept = default;
  /// At most `max_concurrent` permits, `max_waiters` callers waiting;
  /// throws rsl::error for bad counts.
  bulkhead(std::uint64_t max_concurrent, std::uint64_t max_waiters) {
    rsl_bulkhead* b = nullptr;
    check(rsl_bulkhead_new(max_concurrent, max_waiters, &b));
    h_ = decltype(h_)(b);
  }
  /// The error-code alternative to the constructor.
  static result<bulkhead> make(std::uint64_t max_concurrent, std::uint64_t max_waiters) noexcept {
    rsl_bulkhead* b = nullptr;
    rsl_status s = rsl_bulkhead_new(max_concurrent, max_waiters, &b);
    if (s != RSL_OK) return s;
    return bulkhead(b);
  }
  /// Adopts a C handle.
  explicit bulkhead(rsl_bulkhead* adopt) noexcept : h_(adopt) {}

  /// A permit if one is free now, else RSL_ERR_REJECTED.
  result<permit> try_acquire() noexcept {
    rsl_status s = rsl_bulkhead_try_acquire(h_.get());
    if (s != RSL_OK) return s;
    return permit(h_.get());
  }
  /// A permit, waiting up to `timeout` (blocks the thread): RSL_ERR_FULL
  /// when too many wait already, RSL_ERR_TIMEOUT when none came free.
  template <class Rep, class Period>
  result<permit> acquire_for(std::chrono::duration<Rep, Period> timeout) noexcept {
    rsl_status s = rsl_bulkhead_acquire_timeout(h_.get(), to_ns(timeout));
    if (s != RSL_OK) return s;
    return permit(h_.get());
  }
  /// Runs `f()` holding a permit; throws rsl::error (RSL_ERR_REJECTED) when
  /// none is free.
  template <class F>
  auto call(F&& f) -> decltype(f()) {
    permit p = try_acquire().value();
    return std::forward<F>(f)();
  }
  /// Counters and gauges.
  result<rsl_bulkhead_stats> stats() const noexcept {
    rsl_bulkhead_stats st{};
    rsl_status s = rsl_bulkhead_get_stats(h_.get(), &st);
    if (s != RSL_OK) return s;
    return st;
  }
  rsl_bulkhead* get() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  detail::handle<rsl_bulkhead, rsl_bulkhead_free> h_;
};

/// How an adaptive-limited call went (RSL_ADAPTIVE_*).
enum class adaptive_outcome : std::int32_t {
  success = RSL_ADAPTIVE_SUCCESS,
  dropped = RSL_ADAPTIVE_DROPPED,
  ignored = RSL_ADAPTIVE_IGNORED,
};

/// An in-flight limit that follows latency and drops (AIMD or gradient);
/// thread-safe.
class adaptive_limiter {
 public:
  /// One admitted call: report it with success(), dropped() or ignore();
  /// destroyed unreported, it is ignored. Move-only; must not outlive its
  /// limiter.
  class token {
   public:
    token() noexcept = default;
    token(const token&) = delete;
    token& operator=(const token&) = delete;
    token(token&& o) noexcept : a_(std::exchange(o.a_, nullptr)), t_(o.t_) {}
    token& operator=(token&& o) noexcept {
      if (this != &o) {
        (void)ignore();
        a_ = std::exchange(o.a_, nullptr);
        t_ = o.t_;
      }
      return *this;
    }
    ~token() { (void)ignore(); }
    /// The call succeeded; its round trip is measured from the token's start.
    result<void> success() noexcept { return finish(adaptive_outcome::success, RSL_ADAPTIVE_RTT_MEASURE); }
    /// The call succeeded and took `rtt`.
    template <class Rep, class Period>
    result<void> success(std::chrono::duration<Rep, Period> rtt) noexcept {
      return finish(adaptive_outcome::success, to_ns(rtt));
    }
    /// The call was dropped (timed out, refused by an overloaded service).
    result<void> dropped() noexcept { return finish(adaptive_outcome::dropped, RSL_ADAPTIVE_RTT_MEASURE); }
    /// The outcome says nothing about the service: release only.
    result<void> ignore() noexcept { return finish(adaptive_outcome::ignored, 0); }
    /// Reports with an explicit outcome and round-trip time in ns.
    result<void> finish(adaptive_outcome o, std::uint64_t rtt_ns) noexcept {
      if (!a_) return {RSL_ERR_NULL_ARG, "the adaptive token was already reported (or moved from)"};
      return rsl_adaptive_record(std::exchange(a_, nullptr), t_, static_cast<std::int32_t>(o), rtt_ns);
    }
    /// Whether the token is still to be reported.
    explicit operator bool() const noexcept { return a_ != nullptr; }
    /// The C token.
    const rsl_adaptive_token& raw() const noexcept { return t_; }

   private:
    friend class adaptive_limiter;
    token(rsl_adaptive* a, rsl_adaptive_token t) noexcept : a_(a), t_(t) {}
    rsl_adaptive* a_ = nullptr;
    rsl_adaptive_token t_{0, 0};
  };

  /// An empty handle (every call returns RSL_ERR_NULL_ARG).
  adaptive_limiter() noexcept = default;
  /// A limiter; throws rsl::error for a bad config.
  explicit adaptive_limiter(const rsl_adaptive_config& config) {
    rsl_adaptive* a = nullptr;
    check(rsl_adaptive_new(&config, &a));
    h_ = decltype(h_)(a);
  }
  /// The error-code alternative to the constructor.
  static result<adaptive_limiter> make(const rsl_adaptive_config& config) noexcept {
    rsl_adaptive* a = nullptr;
    rsl_status s = rsl_adaptive_new(&config, &a);
    if (s != RSL_OK) return s;
    return adaptive_limiter(a);
  }
  /// Adopts a C handle.
  explicit adaptive_limiter(rsl_adaptive* adopt) noexcept : h_(adopt) {}

  /// A token if fewer than the limit are in flight, else RSL_ERR_REJECTED.
  result<token> try_acquire() noexcept {
    rsl_adaptive_token t{};
    rsl_status s = rsl_adaptive_try_acquire(h_.get(), &t);
    if (s != RSL_OK) return s;
    return token(h_.get(), t);
  }
  /// try_acquire with the call's start time `now_ns`.
  result<token> try_acquire_at(std::uint64_t now_ns) noexcept {
    rsl_adaptive_token t{};
    rsl_status s = rsl_adaptive_try_acquire_at(h_.get(), now_ns, &t);
    if (s != RSL_OK) return s;
    return token(h_.get(), t);
  }
  /// The current limit.
  result<std::size_t> limit() const noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_adaptive_limit(h_.get(), &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Calls in flight.
  result<std::size_t> in_flight() const noexcept {
    std::size_t n = 0;
    rsl_status s = rsl_adaptive_in_flight(h_.get(), &n);
    if (s != RSL_OK) return s;
    return n;
  }
  /// Counters.
  result<rsl_adaptive_stats> stats() const noexcept {
    rsl_adaptive_stats st{};
    rsl_status s = rsl_adaptive_get_stats(h_.get(), &st);
    if (s != RSL_OK) return s;
    return st;
  }
  rsl_adaptive* get() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  detail::handle<rsl_adaptive, rsl_adaptive_free> h_;
};

/// The embedded engine (resilienced's RESP server on io_uring) running in
/// this process. Move-only; destroying it stops it and waits for its threads.
class engine {
 public:
  /// The defaults: 127.0.0.1:6390, one shard per CPU, pinned.
  static rsl_engine_config default_config() noexcept { return rsl_engine_config_default(); }

  /// An empty handle (every call returns RSL_ERR_NULL_ARG).
  engine() noexcept = default;
  /// Starts with `config`; throws rsl::error (RSL_ERR_INVALID_ARG,
  /// RSL_ERR_IO, RSL_ERR_IO_URING_UNAVAILABLE).
  explicit engine(const rsl_engine_config& config) {
    rsl_engine* e = nullptr;
    check(rsl_engine_start(&config, &e));
    h_ = decltype(h_)(e);
  }
  /// The error-code alternative to the constructor.
  static result<engine> start(const rsl_engine_config& config) noexcept {
    rsl_engine* e = nullptr;
    rsl_status s = rsl_engine_start(&config, &e);
    if (s != RSL_OK) return s;
    return engine(e);
  }
  /// Adopts a C handle.
  explicit engine(rsl_engine* adopt) noexcept : h_(adopt) {}

  /// The bound TCP port.
  result<std::uint16_t> port() const noexcept {
    std::uint16_t p = 0;
    rsl_status s = rsl_engine_port(h_.get(), &p);
    if (s != RSL_OK) return s;
    return p;
  }
  /// Counters summed over shards; RSL_ERR_ENGINE_STATE once stopped.
  result<rsl_engine_stats> stats() const noexcept {
    rsl_engine_stats st{};
    rsl_status s = rsl_engine_get_stats(h_.get(), &st);
    if (s != RSL_OK) return s;
    return st;
  }
  /// Stops and waits for the shards; RSL_ERR_ENGINE_STATE if already stopped.
  result<void> stop() noexcept { return rsl_engine_stop(h_.get()); }
  rsl_engine* get() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

 private:
  detail::handle<rsl_engine, rsl_engine_free> h_;
};

}  // namespace rsl

#endif  // RESILIENCE_HPP
