// `holdfast bench` measuring tools: snapshots from /proc, mallinfo2 and getrusage, the latency
// histogram, the progress line and the report-line format.
#include "bench_stats.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>

#include "holdfast/memory.h"

namespace holdfast::cli::bench {
namespace {

// Descriptors kept back for the listener, loops, resolver, stdio, pipes and temp files.
constexpr std::size_t kReservedFds = 256;
constexpr auto kProgressEvery = std::chrono::milliseconds(250);
// Histogram: exact buckets below kExact us, then buckets 1 % wide.
constexpr std::uint64_t kExact = 100;
const double kLogStep = std::log(1.01);

std::int64_t page_size() { return ::sysconf(_SC_PAGESIZE); }

std::int64_t tcp_socket_memory() {
  std::ifstream in("/proc/net/sockstat");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("TCP:")) {
      continue;
    }
    const std::size_t at = line.find(" mem ");
    return at == std::string::npos ? 0 : std::atoll(line.c_str() + at + 5) * page_size();
  }
  return 0;
}

// The slab caches every TCP socket with a descriptor and an epoll registration allocates from.
std::int64_t socket_slab_bytes() {
  static constexpr std::string_view kCaches[] = {
      "TCP", "TCPv6", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq"};
  std::ifstream in("/proc/slabinfo");
  std::int64_t total = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string name;
    std::int64_t active = 0;
    std::int64_t all = 0;
    std::int64_t size = 0;
    fields >> name >> active >> all >> size;
    if (std::find(std::begin(kCaches), std::end(kCaches), name) != std::end(kCaches)) {
      total += active * size;
    }
  }
  return total;
}

std::uint32_t bucket_of(std::uint64_t us) {
  if (us < kExact) {
    return static_cast<std::uint32_t>(us);
  }
  const double steps = std::log(static_cast<double>(us) / kExact) / kLogStep;
  return static_cast<std::uint32_t>(kExact + static_cast<std::uint64_t>(steps));
}

std::uint64_t lower_bound_of(std::uint32_t bucket) {
  if (bucket < kExact) {
    return bucket;
  }
  return static_cast<std::uint64_t>(
      std::ceil(kExact * std::exp(static_cast<double>(bucket - kExact) * kLogStep)));
}

}  // namespace

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double per(double total, double count) { return count == 0 ? 0.0 : total / count; }

ProcessSnapshot take_process_snapshot() {
  ProcessSnapshot s;
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0;
  std::int64_t resident = 0;
  statm >> size >> resident;
  s.rss = resident * page_size();
  const struct mallinfo2 info = ::mallinfo2();
  // Connection objects live in holdfast's slabs, which mallinfo2 does not see: both count.
  s.heap = static_cast<std::int64_t>(info.uordblks + info.hblkhd + memory_stats().bytes_in_use);
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  s.cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000LL +
             usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
  return s;
}

KernelSnapshot take_kernel_snapshot() { return {tcp_socket_memory(), socket_slab_bytes()}; }

std::size_t process_capacity(std::size_t fds_per_connection) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return 0;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur <= kReservedFds ? 0 : (limit.rlim_cur - kReservedFds) / fds_per_connection;
}

void LatencyHistogram::add(std::uint64_t us) {
  ++buckets_[bucket_of(us)];
  ++count_;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (const auto& [bucket, n] : other.buckets_) {
    buckets_[bucket] += n;
  }
  count_ += other.count_;
}

std::uint64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) {
    return 0;
  }
  const auto rank = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(count_ - 1));
  std::uint64_t seen = 0;
  for (const auto& [bucket, n] : buckets_) {
    seen += n;
    if (seen > rank) {
      return lower_bound_of(bucket);
    }
  }
  return lower_bound_of(buckets_.rbegin()->first);
}

std::string LatencyHistogram::encode() const {
  std::string out;
  for (const auto& [bucket, n] : buckets_) {
    if (!out.empty()) {
      out += ',';
    }
    out += std::to_string(bucket);
    out += ':';
    out += std::to_string(n);
  }
  return out.empty() ? "-" : out;
}

void LatencyHistogram::decode_and_merge(const std::string& text) {
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    const std::size_t colon = part.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    const auto bucket = static_cast<std::uint32_t>(std::strtoul(part.c_str(), nullptr, 10));
    const std::uint64_t n = std::strtoull(part.c_str() + colon + 1, nullptr, 10);
    buckets_[bucket] += n;
    count_ += n;
  }
}

Progress::Progress() : enabled_(::isatty(STDERR_FILENO) == 1), last_(Clock::now()) {}

void Progress::show(const char* phase, std::uint64_t open, std::uint64_t requests,
                    std::uint64_t errors) {
  const auto now = Clock::now();
  if (!enabled_ || now - last_ < kProgressEvery) {
    return;
  }
  const double dt = std::chrono::duration<double>(now - last_).count();
  std::fprintf(stderr, "\r\033[K%s: %llu open, %.0f handshakes/s, %.0f requests/s, %llu errors",
               phase, static_cast<unsigned long long>(open),
               static_cast<double>(open - std::min(open, last_open_)) / dt,
               static_cast<double>(requests - std::min(requests, last_requests_)) / dt,
               static_cast<unsigned long long>(errors));
  last_ = now;
  last_open_ = open;
  last_requests_ = requests;
}

void Progress::done() const {
  if (enabled_) {
    std::fprintf(stderr, "\r\033[K");
  }
}

double Line::number(const std::string& key) const {
  const auto it = fields.find(key);
  return it == fields.end() ? 0.0 : std::strtod(it->second.c_str(), nullptr);
}

std::string Line::text(const std::string& key) const {
  const auto it = fields.find(key);
  return it == fields.end() ? std::string() : it->second;
}

Line Line::parse(const std::string& text) {
  Line line;
  std::istringstream in(text);
  in >> line.event;
  for (std::string part; in >> part;) {
    const std::size_t eq = part.find('=');
    if (eq != std::string::npos) {
      line.fields[part.substr(0, eq)] = part.substr(eq + 1);
    }
  }
  return line;
}

LineWriter& LineWriter::add(const std::string& key, double value) {
  char number[64];
  std::snprintf(number, sizeof number, "%.17g", value);
  out_ += " " + key + "=" + number;
  return *this;
}

LineWriter& LineWriter::add(const std::string& key, const std::string& value) {
  std::string v = value.empty() ? "-" : value;
  std::replace(v.begin(), v.end(), ' ', '_');
  std::replace(v.begin(), v.end(), '\n', '_');
  out_ += " " + key + "=" + v;
  return *this;
}

}  // namespace holdfast::cli::bench
