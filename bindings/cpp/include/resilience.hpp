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

}  // namespace rsl

#endif  // RESILIENCE_HPP
