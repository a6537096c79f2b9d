// resilience.hpp - header-only C++17 RAII wrapper over the libresilience C ABI.
//
// - Every handle class is move-only; a moved-from object holds no handle and
//   every call on it returns RSL_ERR_NULL_ARG (or throws rsl::error), never UB.
// - Errors: calls return rsl::result<T> (value or status, no exception);
//   result::value() throws rsl::error, a std::system_error whose code() is in
//   rsl::category() and whose what() carries rsl_last_error().
// - Bytes go in as rsl::bytes (from std::string_view, std::string,
//   std::vector<uint8_t>, or pointer + size): a std::span-like view for C++17.
#ifndef RESILIENCE_HPP
#define RESILIENCE_HPP

#include "resilience.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
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

/// The exception thrown by result::value() and by constructors.
class error : public std::system_error {
 public:
  error(rsl_status s, const std::string& detail)
      : std::system_error(make_error_code(s), detail), status_(s) {}
  /// The status code.
  rsl_status status() const noexcept { return status_; }

 private:
  rsl_status status_;
};

/// Throws rsl::error for any status but RSL_OK, with the thread's last error.
inline void check(rsl_status s) {
  if (s != RSL_OK) throw error(s, rsl_last_error());
}

/// A value or a status: the error-code-returning alternative to exceptions.
template <class T>
class [[nodiscard]] result {
 public:
  result(T v) : status_(RSL_OK), value_(std::move(v)) {}  // NOLINT: implicit on purpose
  result(rsl_status s) : status_(s), value_() {}           // NOLINT
  /// True on RSL_OK.
  bool ok() const noexcept { return status_ == RSL_OK; }
  explicit operator bool() const noexcept { return ok(); }
  /// The status (RSL_OK when a value is held).
  rsl_status status() const noexcept { return status_; }
  /// The status as a std::error_code.
  std::error_code error_code() const noexcept { return make_error_code(status_); }
  /// The value; throws rsl::error when there is none.
  T& value() & {
    check(status_);
    return value_;
  }
  /// The value; throws rsl::error when there is none.
  const T& value() const& {
    check(status_);
    return value_;
  }
  /// The value; throws rsl::error when there is none.
  T&& value() && {
    check(status_);
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
  rsl_status status_;
  T value_;
};

/// A result without a value.
template <>
class [[nodiscard]] result<void> {
 public:
  result(rsl_status s = RSL_OK) : status_(s) {}  // NOLINT
  bool ok() const noexcept { return status_ == RSL_OK; }
  explicit operator bool() const noexcept { return ok(); }
  rsl_status status() const noexcept { return status_; }
  std::error_code error_code() const noexcept { return make_error_code(status_); }
  /// Throws rsl::error unless RSL_OK.
  void value() const { check(status_); }

 private:
  rsl_status status_;
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

/// Converts any std::chrono duration to the library's nanoseconds (>= 0).
template <class Rep, class Period>
inline std::uint64_t to_ns(std::chrono::duration<Rep, Period> d) noexcept {
  auto ns = std::chrono::duration_cast<nanos>(d).count();
  return ns < 0 ? 0 : static_cast<std::uint64_t>(ns);
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
  bool try_acquire(std::uint64_t quantity = 1) { return acquire(quantity).value().allowed(); }
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
  bool try_acquire(bytes key, std::uint64_t quantity = 1) { return acquire(key, quantity).value().allowed(); }
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
      if (!b_) return RSL_ERR_NULL_ARG;
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
      if (!a_) return RSL_ERR_NULL_ARG;
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

}  // namespace rsl

#endif  // RESILIENCE_HPP
