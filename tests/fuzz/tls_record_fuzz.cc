// libFuzzer target for the own TLS 1.3 record layer: a taken-over engine opens whatever arrives,
// valid records (sealed here from fuzzer-chosen content, types and padding) mixed with raw bytes;
// it must never crash, hang or read out of bounds, and must fail with an error, not an assert.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "tls/engine.h"
#include "tls/record.h"

namespace {

using holdfast::tls::AeadSuite;
using holdfast::tls::DirectionKeys;
using holdfast::tls::Engine;

std::vector<std::uint8_t> fixed_secret(std::uint8_t seed, std::size_t len) {
  std::vector<std::uint8_t> s(len);
  for (std::size_t i = 0; i < len; ++i) {
    s[i] = static_cast<std::uint8_t>(seed * 17 + i);
  }
  return s;
}

// Feeds `wire` in pieces of `piece` bytes, reading after each; stops at the first error.
bool deliver(Engine& engine, const std::vector<std::uint8_t>& wire, std::size_t piece) {
  std::uint8_t buf[4096];
  for (std::size_t at = 0; at < wire.size(); at += piece) {
    const std::size_t n = std::min(piece, wire.size() - at);
    if (!engine.feed(std::span(wire).subspan(at, n))) {
      return false;
    }
    for (int i = 0; i < 64; ++i) {
      auto got = engine.read(buf);
      if (!got) {
        return false;
      }
      if (*got == 0) {
        break;
      }
    }
    engine.consume_output(engine.pending_output().size());
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const auto suite = static_cast<AeadSuite>(data[0] % 3);
  const bool is_server = (data[0] & 4) != 0;
  const std::size_t piece = 1 + data[1] % 64;
  const auto client = fixed_secret(1, holdfast::tls::secret_len(suite));
  const auto server = fixed_secret(2, holdfast::tls::secret_len(suite));
  auto engine = Engine::taken_over_for_testing(suite, is_server, client, server);
  if (!engine) {
    std::abort();
  }
  engine->set_key_update_interval(4);
  DirectionKeys peer{};
  if (!holdfast::tls::install_secret(suite, is_server ? client : server, &peer)) {
    std::abort();
  }
  // Ops: [op][len][len bytes]. op % 4: 0 sealed record (first byte = inner type, op / 4 = padding),
  // 1 raw bytes, 2 sealed handshake content, 3 deliver what was built so far.
  std::vector<std::uint8_t> wire;
  std::size_t at = 2;
  bool alive = true;
  while (alive && at + 2 <= size) {
    const std::uint8_t op = data[at];
    const std::size_t len = std::min<std::size_t>(data[at + 1], size - at - 2);
    const std::span<const std::uint8_t> chunk(data + at + 2, len);
    at += 2 + len;
    switch (op % 4) {
      case 0:
        if (!chunk.empty()) {
          (void)holdfast::tls::seal_record(suite, &peer, chunk[0], chunk.subspan(1), &wire, op / 4);
        }
        break;
      case 1: wire.insert(wire.end(), chunk.begin(), chunk.end()); break;
      case 2:
        (void)holdfast::tls::seal_record(suite, &peer, holdfast::tls::kHandshake, chunk, &wire);
        break;
      default:
        alive = deliver(*engine, wire, piece) && engine->write(chunk);
        wire.clear();
        break;
    }
  }
  if (alive && deliver(*engine, wire, piece)) {
    (void)engine->request_key_update(true);
    (void)engine->close();
  }
  (void)engine->on_transport_eof();
  engine->release_buffers();
  return 0;
}
