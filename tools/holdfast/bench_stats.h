// `holdfast bench` measuring tools: process and kernel memory/CPU snapshots, a latency histogram,
// the live progress line, the per-process connection capacity, and the key=value report lines.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace holdfast::cli::bench {

using Clock = std::chrono::steady_clock;

/// Seconds elapsed since `start`.
double seconds_since(Clock::time_point start);

/// `total / count`, 0 when count is 0.
double per(double total, double count);

/// One reading of this process's memory and CPU counters.
struct ProcessSnapshot {
  std::int64_t rss = 0;  ///< /proc/self/statm resident pages * page size
  /// mallinfo2 (uordblks + hblkhd: every arena, mmapped chunks) + holdfast's slab bytes in use
  std::int64_t heap = 0;
  std::int64_t cpu_us = 0;  ///< getrusage(RUSAGE_SELF): user + system
};

/// Reads this process's counters now.
ProcessSnapshot take_process_snapshot();

/// One reading of the system-wide kernel socket memory (both ends of a loopback connection).
struct KernelSnapshot {
  std::int64_t tcp_mem = 0;  ///< /proc/net/sockstat TCP "mem" pages * page size (queued data)
  std::int64_t slab = 0;     ///< /proc/slabinfo bytes of the per-socket caches (root only, else 0)
};

/// Reads the system-wide kernel counters now.
KernelSnapshot take_kernel_snapshot();

/// The most connections one process can hold at `fds_per_connection` descriptors each, after
/// raising the soft descriptor limit to the hard one (kReservedFds are kept back).
std::size_t process_capacity(std::size_t fds_per_connection);

/// Latencies in microseconds in log buckets of 1 % width (exact below 100 us): mergeable across
/// processes and cheap to send over a pipe.
class LatencyHistogram {
 public:
  /// Counts one latency.
  void add(std::uint64_t us);
  /// Adds every count of `other`.
  void merge(const LatencyHistogram& other);
  /// The latency below which `p` percent of the counted ones are (bucket lower bound), 0 if empty.
  [[nodiscard]] std::uint64_t percentile(double p) const;
  /// How many latencies were counted.
  [[nodiscard]] std::uint64_t count() const { return count_; }
  /// "index:count,index:count,..." of the non-empty buckets.
  [[nodiscard]] std::string encode() const;
  /// Adds the buckets of an encode() string; ignores malformed parts.
  void decode_and_merge(const std::string& text);

 private:
  std::map<std::uint32_t, std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
};

/// A live progress line on stderr, shown only when stderr is a terminal, at most 4 times a second.
class Progress {
 public:
  Progress();
  /// Redraws the line with the running totals (rates are computed between redraws).
  void show(const char* phase, std::uint64_t open, std::uint64_t requests, std::uint64_t errors);
  /// Clears the line.
  void done() const;

 private:
  bool enabled_;
  Clock::time_point last_;
  std::uint64_t last_open_ = 0;
  std::uint64_t last_requests_ = 0;
};

/// One report line between bench processes: "<event> key=value key=value ...". Values hold no
/// spaces (numbers, histogram encodings, and text with spaces replaced by '_').
struct Line {
  std::string event;
  std::map<std::string, std::string> fields;

  /// The field as a number, 0 when absent or not a number.
  [[nodiscard]] double number(const std::string& key) const;
  /// The field as text, "" when absent.
  [[nodiscard]] std::string text(const std::string& key) const;
  /// Parses "<event> k=v ..."; unknown shapes give an empty event.
  static Line parse(const std::string& text);
};

/// Builds a report line.
class LineWriter {
 public:
  explicit LineWriter(std::string event) : out_(std::move(event)) {}
  /// Appends " key=value" (a number).
  LineWriter& add(const std::string& key, double value);
  /// Appends " key=value" (text; spaces become '_').
  LineWriter& add(const std::string& key, const std::string& value);
  /// The line, with a trailing newline.
  [[nodiscard]] std::string str() const { return out_ + "\n"; }

 private:
  std::string out_;
};

}  // namespace holdfast::cli::bench
