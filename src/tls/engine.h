// Private: the TLS engine of one connection: ciphertext in, plaintext out, and the reverse; no
// sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "base/slab.h"
#include "holdfast/result.h"
#include "tls/bio.h"
#include "tls/context.h"
#include "tls/record.h"

struct ssl_st;

namespace holdfast::tls {

/// One TLS connection as a byte machine (sans-I/O): the caller moves ciphertext between the network
/// and feed()/pending_output(), and plaintext through write()/read(). The engine owns its output:
/// write() accepts all bytes at once (encrypted into an engine-owned queue, or held until the
/// handshake is done), so a write is never retried with other arguments (incident 004).
/// Two record paths sit behind this face (notes/tls-record-takeover.md, docs/tls.md): for TLS 1.3,
/// once the handshake is done and the take-over guards hold, the engine takes the traffic secrets,
/// frees the OpenSSL SSL and seals and opens records itself (~0.6 KB per idle connection);
/// otherwise (TLS 1.2, a guard failed, or the context's record_takeover is off) the SSL stays, with
/// its buffers freed when idle. Both behave the same to the caller. Not thread-safe: one
/// connection, one thread; distinct engines may run on distinct threads. Typical loop:
///   start(); loop { send(pending_output()); consume_output(n); feed(received); read(...); }
class Engine : public base::SlabAllocated<Engine> {
 public:
  /// A client engine on `ctx` (a client context). `server_name` is sent as SNI and verified against
  /// the certificate; an IP literal (also "[v6]") is verified as an IP address and sends no SNI
  /// (RFC 6066 §3). `session_key` (e.g. "https://host:port") selects the cached session to resume
  /// and stores new ones; "" = no resumption. Errors: TlsErrc::invalid_server_name (empty while
  /// verifying, or unusable), internal_error.
  static Result<std::unique_ptr<Engine>> client(std::shared_ptr<const Context> ctx,
                                                std::string_view server_name,
                                                std::string_view session_key);
  /// A server engine on `ctx` (a server context). Errors: internal_error.
  static Result<std::unique_ptr<Engine>> server(std::shared_ptr<const Context> ctx);
  /// Frees the connection; a cleanly finished one keeps its session resumable (openssl-memory.md
  /// 6).
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Client: queues the ClientHello. Server: nothing to do until feed(). Idempotent.
  Result<void> start();
  /// Takes ciphertext from the network. Before the handshake is done, drives it (queuing our next
  /// flight); a fatal error (bad certificate, alert, garbage) is returned mapped to tls_category(),
  /// with the alert for the peer queued in pending_output(), and every later call returns it too.
  /// After the handshake, records are opened by read().
  Result<void> feed(std::span<const std::uint8_t> ciphertext);
  /// Decrypts into `out` what is available now. Returns bytes written; 0 = nothing yet (or the
  /// peer sent close_notify: see is_peer_closed()). Also processes post-handshake messages (TLS 1.3
  /// session tickets), so call it after every feed(). Errors: a mapped fatal TLS error.
  Result<std::size_t> read(std::span<std::uint8_t> out);
  /// Accepts all of `plaintext`: encrypted into the output queue now, or queued until the
  /// handshake completes. Errors: TlsErrc::closed after close(); an earlier fatal error.
  Result<void> write(std::span<const std::uint8_t> plaintext);
  /// True when ciphertext waits to be sent.
  [[nodiscard]] bool has_pending_output() const { return !io_.output().empty(); }
  /// The ciphertext to send; valid until the next non-const call.
  [[nodiscard]] std::span<const std::uint8_t> pending_output() const { return io_.output(); }
  /// Marks the first `n` bytes of pending_output() as sent.
  void consume_output(std::size_t n) { io_.consume_output(n); }
  /// Queues close_notify (after any queued plaintext; after the handshake if it is still running).
  /// Idempotent. Errors: an earlier fatal error.
  Result<void> close();

  /// True once the handshake completed.
  [[nodiscard]] bool is_handshake_done() const { return handshake_done_; }
  /// True once the peer's close_notify was read.
  [[nodiscard]] bool is_peer_closed() const { return peer_closed_; }
  /// True when read() may return data without more input (unprocessed ciphertext, or decrypted
  /// bytes held inside the TLS library or the own record layer).
  [[nodiscard]] bool has_buffered_plaintext() const;

  /// Negotiated ALPN protocol, "" if none. Valid while the engine lives.
  [[nodiscard]] std::string_view alpn() const;
  /// Protocol version, e.g. "TLSv1.3"; "" before the handshake is done.
  [[nodiscard]] std::string_view version() const;
  /// Cipher suite, e.g. "TLS_AES_256_GCM_SHA384"; "" before the handshake is done.
  [[nodiscard]] std::string_view cipher() const;
  /// True when the handshake resumed a session.
  [[nodiscard]] bool is_session_reused() const;
  /// The peer certificate's subject (RFC 2253 form, e.g. "CN=localhost"); "" if none.
  [[nodiscard]] std::string peer_subject() const;

  /// True once the connection runs on holdfast's own record layer (the SSL is freed).
  [[nodiscard]] bool is_record_taken_over() const { return rec_ != nullptr && ssl_ == nullptr; }
  /// How many connections (clients and servers) this process has taken over so far: lets tests
  /// and benchmarks see which record path ran. Thread-safe.
  static std::uint64_t takeovers();
  /// "holdfast" (own record layer) or "openssl" (kept SSL): for -v output and benchmarks.
  [[nodiscard]] std::string_view record_path() const {
    return is_record_taken_over() ? "holdfast" : "openssl";
  }
  /// TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): queues a KeyUpdate and switches our sending keys; with
  /// `update_requested` the peer is asked to update its keys too (it answers at its next write,
  /// possibly merged with one of its own). Works on both record paths. Errors: TlsErrc::closed
  /// after close() or before the handshake is done; a TLS 1.2 connection ("wrong ssl version");
  /// an earlier fatal error.
  Result<void> request_key_update(bool update_requested);
  /// Sends our KeyUpdate automatically after this many records under one key, and asks the peer
  /// for one after it sent as many (RFC 8446 §5.5 limits AES-GCM to 2^24.5 records per key; the
  /// default is 2^23). For tests; takes effect on the own record layer only.
  void set_key_update_interval(std::uint64_t records) { key_update_interval_ = records; }
  /// A server (or client) engine already taken over with the given generation-0 traffic secrets
  /// and no SSL: the record layer alone, for unit tests and the record fuzzer. Null on failure.
  static std::unique_ptr<Engine> taken_over_for_testing(
      AeadSuite suite, bool is_server, std::span<const std::uint8_t> client_secret,
      std::span<const std::uint8_t> server_secret);

  /// Idle memory: when nothing is pending in either direction, frees OpenSSL's record buffers
  /// (SSL_free_buffers) and releases the engine's own queues to zero capacity. Otherwise does
  /// nothing. Call whenever the connection goes idle; the connection keeps working.
  void release_buffers();
  /// Call when the transport hit EOF (after reading everything). Returns: ok if close_notify was
  /// received or we closed first; TlsErrc::handshake_truncated during the handshake;
  /// TlsErrc::peer_closed_without_close_notify otherwise (a possible truncation attack); or the
  /// earlier fatal error.
  std::error_code on_transport_eof();

 private:
  Engine(std::shared_ptr<const Context> ctx, ssl_st* ssl);
  /// The part client() and server() share: checks the context's role, makes the SSL and its BIO.
  static Result<std::unique_ptr<Engine>> create(std::shared_ptr<const Context> ctx, bool server);
  Result<void> drive_handshake();
  Result<std::size_t> read_with_ssl(std::span<std::uint8_t> out);
  Result<std::size_t> ssl_read_some(std::span<std::uint8_t> out);
  Result<void> after_handshake();
  Result<void> flush_plaintext();
  Result<void> send_close_notify();
  Unexpected fail_with(std::error_code ec);

  // The record take-over (engine_records.cc).
  static void on_ssl_message(int write_p, int version, int content_type, const void* buf,
                             std::size_t len, ssl_st* ssl, void* arg);
  void prepare_takeover();
  [[nodiscard]] bool takeover_guards_hold() const;
  void maybe_take_over();
  void take_over();
  bool keep_alpn_and_subject();
  static std::string_view suite_name(AeadSuite suite);
  void drop_record_state();
  Result<std::size_t> read_records(std::span<std::uint8_t> out);
  Result<void> write_records(std::span<const std::uint8_t> plaintext);
  Result<void> seal(std::uint8_t type, std::span<const std::uint8_t> content);
  Result<void> send_key_update(bool update_requested);
  Result<void> on_record(std::uint8_t type, std::span<const std::uint8_t> content);
  Result<void> on_alert(std::span<const std::uint8_t> content);
  Result<void> on_handshake_bytes(std::span<const std::uint8_t> content);
  Result<void> on_handshake_message(std::uint8_t type, std::span<const std::uint8_t> body,
                                    bool at_record_end);
  Unexpected fail_with_alert(std::uint8_t alert, int reason);
  [[nodiscard]] bool has_whole_record() const;

  // Ordered for size: an idle taken-over connection keeps this object (issue 8).
  std::shared_ptr<const Context> ctx_;
  ssl_st* ssl_;
  ByteQueues io_;
  std::vector<std::uint8_t> plain_out_;  // plaintext accepted but not yet encrypted
  std::size_t plain_out_pos_ = 0;
  // Client: the session-cache key, which the SSL's app data points to (read by the session-cache
  // callback); freed at the take-over, when no callback can come any more.
  std::unique_ptr<std::string> session_key_;
  std::error_code failed_;

  // Take-over. rec_ (from the record slab) receives the secrets during the handshake and carries
  // the records once ssl_ is null.
  RecordState* rec_ = nullptr;
  std::uint64_t key_update_interval_ = std::uint64_t{1} << 23;
  std::uint64_t record_bytes_seen_ = 0;     // 5 + length of every record header OpenSSL read
  std::vector<std::uint8_t> handshake_in_;  // a post-handshake message split across records
  // Copied before the SSL is freed: the peer certificate's subject (null when none), and the ALPN
  // protocol as a piece of ctx_->alpn_wire() (alpn_len_ 0: none).
  struct SlabStringFree {
    void operator()(char* s) const noexcept;
  };
  std::unique_ptr<char[], SlabStringFree> peer_subject_;  // NUL-terminated, in the slab
  std::uint32_t app_records_written_ = 0;  // records OpenSSL sealed under our application key
  std::uint32_t app_records_read_ = 0;     // records OpenSSL opened under the peer's one
  std::uint32_t plain_left_ = 0;           // opened plaintext at io_.in[in_pos], not yet handed out
  std::uint32_t plain_skip_ = 0;           // type byte, padding and tag after it
  std::uint16_t alpn_offset_ = 0;
  std::uint8_t alpn_len_ = 0;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
  bool close_requested_ = false;
  bool close_sent_ = false;
  bool is_server_ = false;
  bool own_finished_written_ = false;
  bool peer_finished_read_ = false;
  bool ssl_key_update_seen_ = false;
  bool wants_tickets_ = false;  // a client with a session cache waits for a ticket first
  bool session_reused_ = false;
};

}  // namespace holdfast::tls
