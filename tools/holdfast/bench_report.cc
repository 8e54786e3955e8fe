// `holdfast bench` report: aggregation of the side processes' lines, table and JSON rendering.
#include "bench_report.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace holdfast::cli::bench {
namespace {

void add_side(SideFigures& side, const Line& idle, const Line& done) {
  side.present = true;
  side.connections += idle.number("connections");
  side.rss += idle.number("rss");
  side.rss_trimmed += idle.number("rss_trimmed");
  side.heap += idle.number("heap");
  side.open_cpu_us += idle.number("cpu_us");
  side.handshakes += idle.number("handshakes");
  side.keepalive_cpu_us += done.number("cpu_us");
  side.keepalive_requests += done.number("requests");
}

// "name<padding>value" rows of the table.
class Table {
 public:
  template <typename... V>
  void row(const char* name, const char* fmt, V... v) {
    char value[256];
    std::snprintf(value, sizeof value, fmt, v...);
    const std::string n(name);
    out_ << "  " << n << std::string(n.size() < 34 ? 34 - n.size() : 1, ' ') << value << "\n";
  }
  void heading(const std::string& text) { out_ << text << "\n"; }
  [[nodiscard]] std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

void side_rows(Table& t, const char* who, const SideFigures& f, double requests) {
  const double n = f.connections;
  t.heading(std::string(who) + " (" + std::to_string(static_cast<long long>(n)) + " connections)");
  t.row("RSS per idle connection", "%.0f B (%.0f B after malloc_trim)", per(f.rss, n),
        per(f.rss_trimmed, n));
  t.row("heap per idle connection", "%.0f B (malloc + slabs)", per(f.heap, n));
  t.row("CPU per handshake", "%.0f us (incl. its one request)", per(f.open_cpu_us, n));
  t.row("CPU per keep-alive request", "%.1f us", per(f.keepalive_cpu_us, requests));
}

void json_side(std::string& out, const char* who, const SideFigures& f, double requests) {
  char buf[512];
  const double n = f.connections;
  std::snprintf(buf, sizeof buf,
                ",\"%s_connections\":%.0f,\"%s_rss_bytes_per_connection\":%.1f,"
                "\"%s_rss_trimmed_bytes_per_connection\":%.1f,"
                "\"%s_heap_bytes_per_connection\":%.1f,\"%s_cpu_us_per_handshake\":%.1f,"
                "\"%s_cpu_us_per_request\":%.2f",
                who, n, who, per(f.rss, n), who, per(f.rss_trimmed, n), who, per(f.heap, n), who,
                per(f.open_cpu_us, n), who, per(f.keepalive_cpu_us, requests));
  out += buf;
}

}  // namespace

void Summary::add_client(const Line& idle, const Line& done) {
  add_side(client, idle, done);
  open_seconds = std::max(open_seconds, idle.number("open_seconds"));
  open_errors += idle.number("open_errors");
  resumptions += idle.number("resumptions");
  requests += done.number("requests");
  requests_sent += done.number("sent");
  busy_opened += done.number("busy_opened");
  request_errors += done.number("errors");
  keepalive_seconds = std::max(keepalive_seconds, done.number("seconds"));
  latency.decode_and_merge(done.text("latency"));
  for (const std::string& e : {idle.text("first_error"), done.text("first_error")}) {
    if (first_error.empty() && !e.empty() && e != "-") {
      first_error = e;
    }
  }
}

void Summary::add_server(const Line& idle, const Line& done) {
  add_side(server, idle, done);
  if (!server_spread.empty()) {
    server_spread += " + ";
  }
  server_spread += std::to_string(static_cast<long long>(idle.number("connections")));
}

std::string render_table(const Summary& s) {
  Table t;
  const double n = s.client.connections;
  t.heading("holdfast bench (" + s.mode + ", " + std::to_string(s.processes) +
            " process(es) per side, " + std::to_string(s.threads) +
            " loop thread(s) each, TLS 1.3, full handshakes" +
            (s.resumptions > 0 ? ", some resumed" : "") + ")");
  t.row("target", "%s", s.target.c_str());
  t.row("connections held idle", "%.0f of %llu%s", n, static_cast<unsigned long long>(s.wanted),
        s.server.present ? "" : " (client side)");
  if (s.server.present) {
    t.row("  seen open by the server(s)", "%.0f (%s)", s.server.connections,
          s.server_spread.c_str());
  }
  t.row("handshakes/s", "%.0f (%.2f s to open all)", per(n, s.open_seconds), s.open_seconds);
  t.heading("keep-alive (" + s.protocol + ", " + std::to_string(s.busy) + " busy connections" +
            (s.protocol == "h2" ? " x " + std::to_string(s.streams) + " streams" : "") + ", " +
            std::to_string(s.body_size) + "-byte responses)");
  t.row("requests", "%.0f in %.2f s (%.0f sent)", s.requests, s.keepalive_seconds, s.requests_sent);
  t.row("requests/s", "%.0f", per(s.requests, s.keepalive_seconds));
  t.row("latency p50/p90/p99/p99.9", "%llu / %llu / %llu / %llu us",
        static_cast<unsigned long long>(s.latency.percentile(50)),
        static_cast<unsigned long long>(s.latency.percentile(90)),
        static_cast<unsigned long long>(s.latency.percentile(99)),
        static_cast<unsigned long long>(s.latency.percentile(99.9)));
  if (s.server.present) {
    side_rows(t, "server", s.server, s.server.keepalive_requests);
  }
  side_rows(t, "client", s.client, s.requests);
  if (s.has_kernel) {
    t.heading("kernel (system-wide, both sockets of each connection)");
    t.row("socket slabs per connection", "%.0f B (TCP, inode, file, dentry, epoll)",
          per(s.kernel_slab, n));
    t.row("TCP buffers per connection", "%.0f B (sockstat mem; idle: ~0)",
          per(s.kernel_tcp_mem, n));
  }
  t.row("errors", "%.0f (opening %.0f, keep-alive %.0f)", s.errors(), s.open_errors,
        s.request_errors);
  return t.str();
}

std::string render_json(const Summary& s) {
  const double n = s.client.connections;
  char buf[1024];
  std::snprintf(
      buf, sizeof buf,
      "{\"mode\":\"%s\",\"protocol\":\"%s\",\"processes\":%zu,\"threads\":%zu,\"busy\":%zu,"
      "\"streams\":%zu,\"busy_connections_opened\":%.0f,\"body_size\":%zu,"
      "\"wanted\":%llu,\"connections\":%.0f,\"server_connections_open\":%.0f,"
      "\"open_seconds\":%.3f,\"handshakes_per_s\":%.1f,\"tls_resumptions\":%.0f,"
      "\"requests\":%.0f,\"requests_sent\":%.0f,\"duration_s\":%.3f,\"requests_per_s\":%.1f,"
      "\"latency_us_p50\":%llu,"
      "\"latency_us_p90\":%llu,\"latency_us_p99\":%llu,\"latency_us_p999\":%llu,"
      "\"kernel_slab_bytes_per_connection\":%.1f,\"kernel_tcp_mem_bytes_per_connection\":%.1f,"
      "\"open_errors\":%.0f,\"request_errors\":%.0f,\"errors\":%.0f",
      s.mode.c_str(), s.protocol.c_str(), s.processes, s.threads, s.busy, s.streams, s.busy_opened,
      s.body_size, static_cast<unsigned long long>(s.wanted), n, s.server.connections,
      s.open_seconds, per(n, s.open_seconds), s.resumptions, s.requests, s.requests_sent,
      s.keepalive_seconds, per(s.requests, s.keepalive_seconds),
      static_cast<unsigned long long>(s.latency.percentile(50)),
      static_cast<unsigned long long>(s.latency.percentile(90)),
      static_cast<unsigned long long>(s.latency.percentile(99)),
      static_cast<unsigned long long>(s.latency.percentile(99.9)), per(s.kernel_slab, n),
      per(s.kernel_tcp_mem, n), s.open_errors, s.request_errors, s.errors());
  std::string out = buf;
  if (s.server.present) {
    json_side(out, "server", s.server, s.server.keepalive_requests);
  }
  json_side(out, "client", s.client, s.requests);
  return out + "}\n";
}

}  // namespace holdfast::cli::bench
