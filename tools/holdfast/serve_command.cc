// `holdfast serve`: TLS with --cert/--key or a certificate generated at start, or --plain; prints
// the bound address first so scripts can read it; stops gracefully on SIGINT/SIGTERM; with
// --workers, pre-forks supervised worker processes sharing the port (prefork.h).
#include "serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "exit_codes.h"
#include "holdfast/certs.h"
#include "holdfast/init.h"
#include "holdfast/server.h"
#include "prefork.h"
#include "routes.h"

namespace holdfast::cli {
namespace {

// In-flight requests get this long to finish after SIGINT/SIGTERM.
constexpr std::chrono::seconds kShutdownGrace{10};
// With --workers: how long the supervisor waits for its workers' graceful stop before SIGKILL.
constexpr std::chrono::seconds kWorkerStopTimeout = kShutdownGrace + std::chrono::seconds(5);

int usage(const std::string& message) {
  print_error(message);
  return static_cast<int>(ExitCode::usage);
}

bool write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  return static_cast<bool>(out);
}

// Fills options.tls; returns the exit code of a failure, or 0.
int configure_tls(const ServeFlags& f, ServerOptions& options, std::string& fingerprint) {
  if (f.plain) {
    return 0;
  }
  ServerTlsOptions tls;
  if (!f.cert.empty()) {
    tls.cert_file = f.cert;
    tls.key_file = f.key;
    options.tls = tls;
    return 0;
  }
  const Result<GeneratedCertificate> generated =
      generate_self_signed_certificate({"localhost"}, {"127.0.0.1", "::1"}, 30);
  if (!generated) {
    print_error(generated.error(), "");
    return static_cast<int>(exit_code_for(generated.error()));
  }
  if (!f.write_cert.empty() && !write_file(f.write_cert, generated->cert_pem)) {
    print_error("could not write " + f.write_cert + ": " + std::strerror(errno));
    return static_cast<int>(ExitCode::write_error);
  }
  tls.cert_pem = generated->cert_pem;
  tls.key_pem = generated->key_pem;
  fingerprint = generated->sha256_fingerprint;
  options.tls = tls;
  return 0;
}

std::string listening_url(const ServeFlags& f, std::uint16_t port) {
  const bool v6 = f.bind.find(':') != std::string::npos;
  return std::string(f.plain ? "http" : "https") + "://" + (v6 ? "[" + f.bind + "]" : f.bind) +
         ":" + std::to_string(port);
}

// Blocks SIGINT and SIGTERM in the calling thread. Done before the server's threads start, so they
// inherit the mask and wait_for_signal() is the only place these signals are taken.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Waits for SIGINT or SIGTERM, which the caller blocked in every thread; returns the signal.
int wait_for_signal(const sigset_t& signals) {
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  return signal;
}

void print_listening(const ServeFlags& f, std::uint16_t port, const std::string& fingerprint) {
  std::printf("listening on %s\n", listening_url(f, port).c_str());
  if (!fingerprint.empty()) {
    std::printf("certificate sha256 fingerprint %s\n", fingerprint.c_str());
  }
  std::fflush(stdout);
}

// One pre-forked worker: its own Server (and so its own TLS context, built here, after fork()) on
// the listener the supervisor bound. The Server header names the worker, so that clients and
// tests can see which process answered.
int run_worker(const ServeFlags& f, ServerOptions options, std::size_t index, int listen_fd,
               const sigset_t& signals, const std::function<void()>& ready) {
  options.listen_fd = listen_fd;
  options.server_header =
      "holdfast (worker " + std::to_string(index + 1) + "; pid " + std::to_string(::getpid()) + ")";
  Result<std::unique_ptr<Server>> server = Server::start(options, make_router(f.access_log));
  if (!server) {
    print_error(server.error(), "");
    return static_cast<int>(exit_code_for(server.error()));
  }
  ready();
  wait_for_signal(signals);
  (*server)->shutdown(kShutdownGrace);
  return 0;
}

// --workers N: bind N SO_REUSEPORT listeners here, then fork and supervise the workers.
int serve_workers(const ServeFlags& f, const ServerOptions& options, const std::string& fingerprint,
                  const sigset_t& signals) {
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);  // taken by the supervisor's sigwait
  pthread_sigmask(SIG_BLOCK, &child, nullptr);
  Result<Listeners> listeners = bind_listeners(f.bind, f.port, f.workers);
  if (!listeners) {
    print_error(listeners.error(), "");
    return static_cast<int>(exit_code_for(listeners.error()));
  }
  const std::uint16_t port = listeners->port;
  const WorkerMain worker = [&](std::size_t index, int fd, const std::function<void()>& ready) {
    return run_worker(f, options, index, fd, signals, ready);
  };
  return run_workers(
      std::move(*listeners), worker, [&] { print_listening(f, port, fingerprint); },
      kWorkerStopTimeout);
}

int check_flags(const ServeFlags& f) {
  if (f.cert.empty() != f.key.empty()) {
    return usage("--cert and --key go together");
  }
  if (f.plain && (!f.cert.empty() || !f.write_cert.empty())) {
    return usage("--plain takes no certificate options");
  }
  if (!f.cert.empty() && !f.write_cert.empty()) {
    return usage("--write-cert writes the generated certificate; it does not go with --cert");
  }
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, ServeFlags& f) {
  CLI::App* serve =
      app.add_subcommand("serve", "serve the built-in test routes over HTTPS or HTTP");
  serve->add_option("--bind", f.bind, "numeric ADDRESS to listen on")->capture_default_str();
  serve->add_option("--port", f.port, "port to listen on; 0: the kernel picks")
      ->capture_default_str();
  serve->add_option("--cert", f.cert, "PEM certificate chain FILE")->check(CLI::ExistingFile);
  serve->add_option("--key", f.key, "PEM private key FILE")->check(CLI::ExistingFile);
  serve->add_option("--write-cert", f.write_cert, "write the generated certificate's PEM to FILE");
  serve->add_flag("--plain", f.plain, "plain HTTP without TLS");
  serve->add_option("--threads", f.threads, "event-loop threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve
      ->add_option("--workers", f.workers,
                   "pre-forked worker processes sharing the port; 0: serve in this process")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  serve->add_flag("--access-log", f.access_log, "log one line per request on stderr");
  add_socket_flags(*serve, f.socket);
}

int run_serve(const ServeFlags& f) {
  if (const int code = check_flags(f); code != 0) {
    return code;
  }
  // One-time TLS work before anything else (docs/fork.md): with --workers, done once here and
  // inherited by every worker.
  if (const Result<void> ready = init(); !ready) {
    print_error(ready.error(), "");
    return static_cast<int>(exit_code_for(ready.error()));
  }
  ServerOptions options;
  options.bind = f.bind;
  options.port = f.port;
  options.threads = f.threads;
  apply_socket_flags(f.socket, options.socket);
  std::string fingerprint;
  if (const int code = configure_tls(f, options, fingerprint); code != 0) {
    return code;
  }
  const sigset_t signals = block_stop_signals();
  if (f.workers > 0) {
    return serve_workers(f, options, fingerprint, signals);
  }
  Result<std::unique_ptr<Server>> server = Server::start(options, make_router(f.access_log));
  if (!server) {
    print_error(server.error(), "");
    return static_cast<int>(exit_code_for(server.error()));
  }
  print_listening(f, (*server)->port(), fingerprint);
  const int signal = wait_for_signal(signals);
  std::fprintf(stderr, "holdfast: %s received, shutting down\n",
               signal == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->shutdown(kShutdownGrace);
  return 0;
}

}  // namespace holdfast::cli
