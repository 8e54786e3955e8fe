// The client's per-origin TLS session cache.
#include "tls/session_cache.h"

#include <algorithm>

#include <openssl/ssl.h>

namespace holdfast::tls {

SessionCache::SessionCache(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

SessionCache::~SessionCache() {
  for (auto& [key, entry] : entries_) {
    SSL_SESSION_free(entry.session);
  }
}

void SessionCache::put(const std::string& key, ssl_session_st* session) {
  if (SSL_SESSION_is_resumable(session) == 0) {
    SSL_SESSION_free(session);
    return;
  }
  ssl_session_st* replaced = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      replaced = it->second.session;
      it->second = Entry{session, ++clock_};
    } else {
      if (entries_.size() >= capacity_) {
        evict_oldest_locked();
      }
      entries_.emplace(key, Entry{session, ++clock_});
    }
  }
  // Freed outside the lock: freeing a session can be slow (it owns the peer chain).
  SSL_SESSION_free(replaced);
}

ssl_session_st* SessionCache::get1(std::string_view key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(std::string(key));
  if (it == entries_.end()) {
    return nullptr;
  }
  SSL_SESSION_up_ref(it->second.session);
  return it->second.session;
}

std::size_t SessionCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void SessionCache::evict_oldest_locked() {
  // Linear scan: eviction happens only when the cache is full, and capacity is small (origins).
  auto oldest = std::min_element(
      entries_.begin(), entries_.end(),
      [](const auto& a, const auto& b) { return a.second.stored_at < b.second.stored_at; });
  if (oldest != entries_.end()) {
    SSL_SESSION_free(oldest->second.session);
    entries_.erase(oldest);
  }
}

}  // namespace holdfast::tls
