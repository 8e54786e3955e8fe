// Private: the client's TLS session cache, one newest session per origin key, bounded in size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

struct ssl_session_st;

namespace holdfast::tls {

/// Holds at most `capacity` sessions, one per key (e.g. "https://host:port"); a newer session for a
/// key replaces the older one (TLS 1.3 servers send tickets after the handshake, the newest wins).
/// When full, the least recently stored key is dropped. Thread-safe (one mutex): a client Context,
/// and so its cache, is shared by connections on every thread.
class SessionCache {
 public:
  /// An empty cache for up to `capacity` keys (at least 1).
  explicit SessionCache(std::size_t capacity);
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  /// Stores `session` under `key`, taking over the caller's reference. Sessions that cannot be
  /// resumed are freed instead.
  void put(const std::string& key, ssl_session_st* session);
  /// The session stored for `key` with a new reference the caller must free (SSL_SESSION_free),
  /// or null.
  [[nodiscard]] ssl_session_st* get1(std::string_view key) const;
  /// Number of keys held.
  [[nodiscard]] std::size_t size() const;

 private:
  struct Entry {
    ssl_session_st* session;
    std::uint64_t stored_at;
  };
  void evict_oldest_locked();

  std::size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t clock_ = 0;
};

}  // namespace holdfast::tls
