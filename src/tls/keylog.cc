// Traffic-secret capture (notes/tls-record-takeover.md fact 1) and the SSLKEYLOGFILE writer.
#include "tls/keylog.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "tls/record.h"

namespace holdfast::tls {
namespace {

int ex_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

struct KeylogFile {
  std::mutex mu;
  std::FILE* file = nullptr;
};

// Opened once, at the first context: the variable is read once per process, as curl does.
KeylogFile& keylog_file() {
  static auto* k = [] {
    auto* out = new KeylogFile;
    const char* path = std::getenv("SSLKEYLOGFILE");
    if (path != nullptr && *path != '\0') {
      out->file = std::fopen(path, "a");
    }
    return out;
  }();
  return *k;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Decodes the hex secret into `out`; returns its length, 0 if malformed or too long.
std::uint8_t decode_secret(std::string_view hex, std::uint8_t* out) {
  if (hex.size() % 2 != 0 || hex.size() / 2 > kMaxSecretLen) {
    return 0;
  }
  for (std::size_t i = 0; i < hex.size() / 2; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return 0;
    }
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return static_cast<std::uint8_t>(hex.size() / 2);
}

void capture(RecordState* state, std::string_view line) {
  // "<LABEL> <client_random hex> <secret hex>"
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return;
  }
  const std::string_view label = line.substr(0, sp1);
  const std::string_view secret = line.substr(sp2 + 1);
  const bool client = label == "CLIENT_TRAFFIC_SECRET_0";
  if (!client && label != "SERVER_TRAFFIC_SECRET_0") {
    return;
  }
  // The server writes with the server secret and reads with the client's; the client the reverse.
  const bool is_write = client != state->is_server;
  DirectionKeys& keys = is_write ? state->write : state->read;
  (is_write ? state->write_secret_len : state->read_secret_len) =
      decode_secret(secret, keys.secret);
}

void on_keylog(const SSL* ssl, const char* line) {
  if (auto* state = static_cast<RecordState*>(SSL_get_ex_data(ssl, ex_index()))) {
    capture(state, line);
  }
  KeylogFile& k = keylog_file();
  if (k.file != nullptr) {
    std::lock_guard lock(k.mu);
    std::fputs(line, k.file);
    std::fputc('\n', k.file);
    std::fflush(k.file);
  }
}

}  // namespace

void install_keylog_callback(ssl_ctx_st* ctx) {
  (void)keylog_file();
  (void)ex_index();
  SSL_CTX_set_keylog_callback(ctx, on_keylog);
}

bool attach_secret_receiver(ssl_st* ssl, RecordState* state) {
  return SSL_set_ex_data(ssl, ex_index(), state) == 1;
}

bool keylog_file_enabled() { return keylog_file().file != nullptr; }

}  // namespace holdfast::tls
