// Fd: the RAII owner of one file descriptor.
#pragma once

#include <utility>

namespace holdfast::net {

/// Owns a descriptor and closes it on destruction. Move-only. Not thread-safe.
class Fd {
 public:
  /// An empty owner (get() == -1).
  Fd() = default;
  /// Takes ownership of `fd` (-1 for none).
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset(other.release());
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  /// The descriptor, or -1. Ownership stays here.
  [[nodiscard]] int get() const { return fd_; }
  /// True when a descriptor is held.
  [[nodiscard]] bool is_valid() const { return fd_ >= 0; }
  /// Gives up ownership without closing; returns the descriptor (or -1).
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  /// Closes the held descriptor (if any) and takes `fd` instead. close() errors are ignored: the
  /// descriptor is gone either way on Linux.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace holdfast::net
