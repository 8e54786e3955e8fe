// Interop helpers for the TLS 1.3 record take-over tests: required peers (fail in CI, skip loudly
// elsewhere), shell pipelines with timed stdin, and a Go crypto/tls peer built once per process.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "interop_support.h"

namespace holdfast::interop {

/// True when the environment says CI (CI=true): a missing peer is then a failure, not a skip.
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

/// Sets `var` to the path of `program`; when it is missing, fails the test in CI and skips it
/// loudly elsewhere, naming the Debian package to install.
#define HOLDFAST_REQUIRE_PROGRAM(var, program, package)                                            \
  const std::string var = ::holdfast::interop::find_program(program);                              \
  if (var.empty()) {                                                                               \
    if (::holdfast::interop::in_ci()) {                                                            \
      FAIL() << program << " is not installed: apt-get install " << package;                       \
    }                                                                                              \
    GTEST_SKIP() << "*** SKIPPED: " << program << " is not installed (apt-get install " << package \
                 << ") ***";                                                                       \
  }

/// Single-quotes `s` for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

/// The Go peer's source: `client ADDR CAFILE N SIZE` fetches /size/SIZE N times over one TLS 1.3
/// connection and prints "ok TOTAL CIPHER"; `server CERT KEY` serves /size/N on 127.0.0.1:0 and
/// prints "listening ADDR". Standard library only.
inline constexpr const char* kGoPeerSource =
    R"GO(// A Go crypto/tls peer for holdfast's interop tests: "client ADDR CAFILE N SIZE" fetches /size/SIZE
// N times over one TLS 1.3 connection; "server CERT KEY" serves /size/N on 127.0.0.1:0.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

func readHead(r *bufio.Reader) (string, int, error) {
	first := ""
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return first, length, nil
		}
		if first == "" {
			first = line
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "content-length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
}

func client(addr, caFile string, n, size int) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	host, _, _ := net.SplitHostPort(addr)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS13})
	if err != nil {
		return err
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	total := 0
	for i := 0; i < n; i++ {
		fmt.Fprintf(conn, "GET /size/%d HTTP/1.1\r\nHost: %s\r\n\r\n", size, addr)
		status, length, err := readHead(r)
		if err != nil {
			return err
		}
		if !strings.Contains(status, " 200") {
			return fmt.Errorf("status %q", status)
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		total += len(body)
	}
	fmt.Printf("ok %d %s\n", total, tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
	return nil
}

func serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		status, _, err := readHead(r)
		if err != nil {
			return
		}
		fields := strings.Fields(status)
		size := 5
		if len(fields) > 1 && strings.HasPrefix(fields[1], "/size/") {
			size, _ = strconv.Atoi(strings.TrimPrefix(fields[1], "/size/"))
		}
		body := strings.Repeat("g", size)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", size, body)
	}
}

func server(certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serve(c)
	}
}

func main() {
	var err error
	switch {
	case len(os.Args) == 6 && os.Args[1] == "client":
		n, _ := strconv.Atoi(os.Args[4])
		size, _ := strconv.Atoi(os.Args[5])
		err = client(os.Args[2], os.Args[3], n, size)
	case len(os.Args) == 4 && os.Args[1] == "server":
		err = server(os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("usage: peer client ADDR CAFILE N SIZE | peer server CERT KEY")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
)GO";

/// Builds the Go peer once per process into a temporary directory (GOCACHE and GOPATH there too,
/// GOPROXY=off: nothing is downloaded). Returns the binary's path, or "" with `error` set.
inline std::string go_peer_binary(const std::string& go, std::string* error) {
  static TempDir dir;
  static std::string built;
  static std::string build_error;
  if (built.empty() && build_error.empty()) {
    write_file(dir.file("peer.go"), kGoPeerSource);
    const std::string env = "GOCACHE=" + dir.file("cache") + " GOPATH=" + dir.file("gopath") +
                            " HOME=" + dir.path() + " GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=off";
    const RunResult r = run({"/bin/sh", "-c",
                             "cd " + shell_quote(dir.path()) + " && env " + env + " " +
                                 shell_quote(go) + " build -o peer peer.go"},
                            milliseconds(120'000));
    if (r.exit_code == 0) {
      built = dir.file("peer");
    } else {
      build_error = "go build failed: " + r.err;
    }
  }
  *error = build_error;
  return built;
}

}  // namespace holdfast::interop
