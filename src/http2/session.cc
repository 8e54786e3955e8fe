// Session: nghttp2 callbacks turned into SessionHandler events, and per-stream output buffers
// drained by deferrable data providers.
#include "http2/session.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nghttp2/nghttp2.h>

#include "holdfast/error.h"

namespace holdfast::http2 {
namespace {

// RFC 9113 §6.5.2: the size of a field is its name and value lengths plus 32 octets.
constexpr std::size_t kFieldOverhead = 32;

// RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2 (TE only as "trailers").
bool is_connection_specific(std::string_view lower_name) {
  return lower_name == "connection" || lower_name == "keep-alive" ||
         lower_name == "proxy-connection" || lower_name == "transfer-encoding" ||
         lower_name == "upgrade" || lower_name == "host";
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  });
  return out;
}

std::error_code code_error(std::uint32_t code) {
  if (code == NGHTTP2_NO_ERROR) {
    return {};
  }
  if (code > NGHTTP2_HTTP_1_1_REQUIRED) {
    return make_error_code(Http2Errc::internal_error);  // RFC 9113 §7: unknown codes
  }
  return make_error_code(static_cast<Http2Errc>(code));
}

std::error_code library_error(int rv) {
  switch (rv) {
    case NGHTTP2_ERR_FLOODED: return make_error_code(Http2Errc::enhance_your_calm);
    case NGHTTP2_ERR_FLOW_CONTROL: return make_error_code(Http2Errc::flow_control_error);
    case NGHTTP2_ERR_HEADER_COMP: return make_error_code(Http2Errc::compression_error);
    case NGHTTP2_ERR_FRAME_SIZE_ERROR: return make_error_code(Http2Errc::frame_size_error);
    case NGHTTP2_ERR_NOMEM:
    case NGHTTP2_ERR_CALLBACK_FAILURE: return make_error_code(Http2Errc::internal_error);
    case NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE:
    case NGHTTP2_ERR_START_STREAM_NOT_ALLOWED: return make_error_code(Http2Errc::refused_stream);
    default: return make_error_code(Http2Errc::protocol_error);
  }
}

/// One field as nghttp2 sends it: owned lower-case name and value.
struct OwnedField {
  std::string name;
  std::string value;
};

void add_regular_fields(std::vector<OwnedField>& out, const Headers& headers) {
  for (const auto& f : headers) {
    std::string name = lowercase(f.name);
    if (name.empty() || name[0] == ':' || is_connection_specific(name)) {
      continue;
    }
    if (name == "te" && !iequals(f.value, "trailers")) {
      continue;
    }
    // A field the peer would reject (RFC 9113 §8.2.1: CR, LF, NUL; a non-token name) would
    // reset the whole stream: it is dropped, as HTTP/1.1 drops it (no response splitting).
    if (nghttp2_check_header_name(reinterpret_cast<const std::uint8_t*>(name.data()),
                                  name.size()) == 0 ||
        nghttp2_check_header_value(reinterpret_cast<const std::uint8_t*>(f.value.data()),
                                   f.value.size()) == 0) {
      continue;
    }
    out.push_back({std::move(name), f.value});
  }
}

std::vector<nghttp2_nv> to_nv(std::vector<OwnedField>& fields) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (auto& f : fields) {
    nv.push_back({reinterpret_cast<std::uint8_t*>(f.name.data()),
                  reinterpret_cast<std::uint8_t*>(f.value.data()), f.name.size(), f.value.size(),
                  NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

}  // namespace

struct Session::Impl {
  /// A stream's state on our side: the head being received and the body waiting to be framed.
  struct Stream {
    Head head;
    std::size_t header_bytes = 0;
    bool head_delivered = false;
    bool remote_ended = false;
    std::string out;  // body bytes not yet framed, from out_pos
    std::size_t out_pos = 0;
    bool local_ended = false;
    bool deferred = false;
    std::size_t unconsumed = 0;  // body bytes received and not yet given back (manual windows)
  };

  Impl(SessionHandler* h, SessionOptions o, bool server)
      : handler(h), options(o), is_server(server) {}
  ~Impl() { nghttp2_session_del(session); }

  Result<void> init();
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                       std::uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, std::uint8_t flags, std::int32_t stream_id,
                           const std::uint8_t* data, std::size_t len, void* user);
  static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t code,
                             void* user);
  static ssize_t read_body(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                           void* user);
  void on_headers_frame(const nghttp2_frame* frame);
  void add_field(Stream& s, std::string_view name, std::string_view value);
  Stream* find(std::int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : &it->second;
  }
  nghttp2_data_provider provider() {
    nghttp2_data_provider p{};
    p.read_callback = &Impl::read_body;
    return p;
  }

  SessionHandler* handler;
  SessionOptions options;
  bool is_server;
  nghttp2_session* session = nullptr;
  std::unordered_map<std::int32_t, Stream> streams;
  std::vector<std::int32_t> drained;  // streams whose buffer emptied during send()
  bool peer_goaway = false;
  std::int32_t peer_last_stream_id = 0x7fffffff;
};

Result<void> Session::Impl::init() {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) {
    return fail(Http2Errc::internal_error);
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Impl::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Impl::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Impl::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Impl::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Impl::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Our own limit on received header lists is enforced in on_header; nghttp2 only needs to know
  // how much HPACK state the peer may make us keep.
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  if (!options.auto_window_update) {
    nghttp2_option_set_no_auto_window_update(opt, 1);
  }
  const int rv = is_server ? nghttp2_session_server_new2(&session, cb, this, opt)
                           : nghttp2_session_client_new2(&session, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    return fail(library_error(rv));
  }
  std::vector<nghttp2_settings_entry> settings = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, options.max_header_list_size},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options.initial_window_size},
  };
  if (!is_server) {
    settings.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});  // RFC 9113 §8.4: no server push
  }
  if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size()) != 0) {
    return fail(Http2Errc::internal_error);
  }
  const auto window = static_cast<std::int32_t>(
      std::min<std::uint32_t>(options.connection_window_size, 0x7fffffffu));
  (void)nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, window);
  return {};
}

int Session::Impl::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Impl*>(user);
  if (frame->hd.type == NGHTTP2_PUSH_PROMISE) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;  // never reached: ENABLE_PUSH = 0 makes it a GOAWAY
  }
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  if (self->is_server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    self->streams.try_emplace(frame->hd.stream_id);
    self->handler->on_begin_head(frame->hd.stream_id);
  }
  return 0;
}

void Session::Impl::add_field(Stream& s, std::string_view name, std::string_view value) {
  s.header_bytes += name.size() + value.size() + kFieldOverhead;
  if (s.head.too_large || s.header_bytes > options.max_header_list_size) {
    s.head.too_large = true;
    return;
  }
  Head& h = s.head;
  if (name.empty() || name[0] != ':') {
    h.headers.add(std::string(name), std::string(value));
  } else if (name == ":method") {
    h.method.assign(value);
  } else if (name == ":scheme") {
    h.scheme.assign(value);
  } else if (name == ":authority") {
    h.authority.assign(value);
  } else if (name == ":path") {
    h.path.assign(value);
  } else if (name == ":status") {
    std::from_chars(value.data(), value.data() + value.size(), h.status);
  }
}

int Session::Impl::on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                             std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                             std::uint8_t, void* user) {
  auto* self = static_cast<Impl*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  Stream* s = self->find(frame->hd.stream_id);
  if (s == nullptr || s->head_delivered) {
    return 0;  // trailers: not exposed
  }
  self->add_field(*s, {reinterpret_cast<const char*>(name), namelen},
                  {reinterpret_cast<const char*>(value), valuelen});
  return 0;
}

void Session::Impl::on_headers_frame(const nghttp2_frame* frame) {
  const std::int32_t id = frame->hd.stream_id;
  Stream* s = find(id);
  if (s == nullptr) {
    return;
  }
  const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (!s->head_delivered) {
    if (!is_server && s->head.status >= 100 && s->head.status < 200) {
      s->head = Head{};  // RFC 9110 §15.2: interim responses are skipped
      s->header_bytes = 0;
      return;
    }
    s->head_delivered = true;
    s->remote_ended = end;
    handler->on_head(id, std::move(s->head), end);
    s = find(id);  // the handler may have reset the stream
  } else if (end) {
    s->remote_ended = true;
  }
  if (end && s != nullptr) {
    handler->on_end_stream(id);
  }
}

int Session::Impl::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Impl*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: self->on_headers_frame(frame); break;
    case NGHTTP2_DATA:
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        if (Stream* s = self->find(frame->hd.stream_id); s != nullptr && s->head_delivered) {
          s->remote_ended = true;
          self->handler->on_end_stream(frame->hd.stream_id);
        }
      }
      break;
    case NGHTTP2_GOAWAY:
      self->peer_goaway = true;
      self->peer_last_stream_id = frame->goaway.last_stream_id;
      self->handler->on_goaway(frame->goaway.last_stream_id, code_error(frame->goaway.error_code));
      break;
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        self->handler->on_settings();
      }
      break;
    default: break;
  }
  return 0;
}

int Session::Impl::on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t stream_id,
                                 const std::uint8_t* data, std::size_t len, void* user) {
  auto* self = static_cast<Impl*>(user);
  Stream* s = self->find(stream_id);
  if (s == nullptr || !s->head_delivered) {
    if (!self->options.auto_window_update) {
      (void)nghttp2_session_consume_connection(self->session, len);  // nobody will read it
    }
    return 0;
  }
  s->unconsumed += len;
  self->handler->on_body(stream_id, {data, len});
  return 0;
}

int Session::Impl::on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t code,
                                   void* user) {
  auto* self = static_cast<Impl*>(user);
  auto it = self->streams.find(stream_id);
  if (it == self->streams.end()) {
    return 0;
  }
  const bool remote_ended = it->second.remote_ended;
  if (!self->options.auto_window_update && it->second.unconsumed > 0) {
    // RFC 9113 §6.9: the connection window must not shrink for bytes nobody will read.
    (void)nghttp2_session_consume_connection(self->session, it->second.unconsumed);
  }
  self->streams.erase(it);
  std::error_code ec = code_error(code);
  if (!self->is_server && self->peer_goaway && stream_id > self->peer_last_stream_id) {
    ec = make_error_code(Http2Errc::goaway);  // RFC 9113 §6.8: never processed, safe to retry
  } else if (!ec && !remote_ended) {
    ec = make_error_code(Http2Errc::stream_reset);
  }
  self->handler->on_stream_closed(stream_id, ec);
  return 0;
}

ssize_t Session::Impl::read_body(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                                 std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                                 void* user) {
  auto* self = static_cast<Impl*>(user);
  Stream* s = self->find(stream_id);
  if (s == nullptr) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  const std::size_t available = s->out.size() - s->out_pos;
  const std::size_t n = std::min(available, length);
  if (n > 0) {
    std::memcpy(buf, s->out.data() + s->out_pos, n);
    s->out_pos += n;
  }
  if (s->out_pos == s->out.size()) {
    s->out.clear();
    s->out_pos = 0;
    if (s->local_ended) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    } else {
      self->drained.push_back(stream_id);
    }
  }
  return static_cast<ssize_t>(n);
}

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::client(SessionHandler* handler, SessionOptions options) {
  auto impl = std::make_unique<Impl>(handler, options, false);
  if (auto r = impl->init(); !r) {
    return fail(r.error());
  }
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Result<std::unique_ptr<Session>> Session::server(SessionHandler* handler, SessionOptions options) {
  auto impl = std::make_unique<Impl>(handler, options, true);
  if (auto r = impl->init(); !r) {
    return fail(r.error());
  }
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Result<void> Session::receive(std::span<const std::uint8_t> data) {
  const ssize_t rv = nghttp2_session_mem_recv(impl_->session, data.data(), data.size());
  if (rv < 0) {
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      return fail(Http2Errc::protocol_error);
    }
    return fail(library_error(static_cast<int>(rv)));
  }
  return {};
}

Result<void> Session::send(std::string& out) {
  for (;;) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(impl_->session, &data);
    if (n < 0) {
      return fail(library_error(static_cast<int>(n)));
    }
    if (n == 0) {
      break;
    }
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  // Drain events after framing, so that a handler writing more does not run inside nghttp2.
  auto drained = std::move(impl_->drained);
  impl_->drained.clear();
  for (std::int32_t id : drained) {
    if (impl_->find(id) != nullptr) {
      impl_->handler->on_stream_drained(id);
    }
  }
  return {};
}

bool Session::wants_write() const { return nghttp2_session_want_write(impl_->session) != 0; }

bool Session::is_alive() const {
  return nghttp2_session_want_read(impl_->session) != 0 ||
         nghttp2_session_want_write(impl_->session) != 0;
}

Result<std::int32_t> Session::submit_request(const Head& head, bool has_body) {
  if (impl_->peer_goaway) {
    return fail(Http2Errc::refused_stream);  // RFC 9113 §6.8: no new stream after GOAWAY
  }
  std::vector<OwnedField> fields = {{":method", head.method},
                                    {":scheme", head.scheme},
                                    {":authority", head.authority},
                                    {":path", head.path}};
  add_regular_fields(fields, head.headers);
  auto nv = to_nv(fields);
  auto provider = impl_->provider();
  const std::int32_t id = nghttp2_submit_request(impl_->session, nullptr, nv.data(), nv.size(),
                                                 has_body ? &provider : nullptr, nullptr);
  if (id < 0) {
    return fail(library_error(id));
  }
  auto& s = impl_->streams[id];
  s.local_ended = !has_body;
  return id;
}

Result<void> Session::submit_response(std::int32_t stream_id, int status, const Headers& headers,
                                      bool has_body) {
  Impl::Stream* s = impl_->find(stream_id);
  if (s == nullptr) {
    return fail(Http2Errc::stream_closed);
  }
  std::vector<OwnedField> fields = {{":status", std::to_string(status)}};
  add_regular_fields(fields, headers);
  auto nv = to_nv(fields);
  auto provider = impl_->provider();
  const int rv = nghttp2_submit_response(impl_->session, stream_id, nv.data(), nv.size(),
                                         has_body ? &provider : nullptr);
  if (rv != 0) {
    return fail(library_error(rv));
  }
  s->local_ended = !has_body;
  return {};
}

void Session::write(std::int32_t stream_id, std::string_view data) {
  Impl::Stream* s = impl_->find(stream_id);
  if (s == nullptr || s->local_ended || data.empty()) {
    return;
  }
  s->out.append(data);
  if (s->deferred) {
    s->deferred = false;
    (void)nghttp2_session_resume_data(impl_->session, stream_id);
  }
}

void Session::end_stream(std::int32_t stream_id) {
  Impl::Stream* s = impl_->find(stream_id);
  if (s == nullptr || s->local_ended) {
    return;
  }
  s->local_ended = true;
  if (s->deferred) {
    s->deferred = false;
    (void)nghttp2_session_resume_data(impl_->session, stream_id);
  }
}

std::size_t Session::buffered(std::int32_t stream_id) const {
  auto it = impl_->streams.find(stream_id);
  return it == impl_->streams.end() ? 0 : it->second.out.size() - it->second.out_pos;
}

void Session::consume(std::int32_t stream_id, std::size_t bytes) {
  if (impl_->options.auto_window_update) {
    return;
  }
  Impl::Stream* s = impl_->find(stream_id);
  if (s == nullptr) {
    return;
  }
  const std::size_t n = std::min(bytes, s->unconsumed);
  s->unconsumed -= n;
  if (n > 0) {
    (void)nghttp2_session_consume(impl_->session, stream_id, n);
  }
}

void Session::reset(std::int32_t stream_id, Http2Errc code) {
  auto wire = static_cast<std::uint32_t>(code) <= NGHTTP2_HTTP_1_1_REQUIRED
                  ? static_cast<std::uint32_t>(code)
                  : static_cast<std::uint32_t>(NGHTTP2_INTERNAL_ERROR);
  if (code == Http2Errc::stream_reset) {
    wire = NGHTTP2_NO_ERROR;
  }
  (void)nghttp2_submit_rst_stream(impl_->session, NGHTTP2_FLAG_NONE, stream_id, wire);
}

void Session::goaway(std::error_code code) {
  std::uint32_t wire = NGHTTP2_NO_ERROR;
  if (code && code.category() == http2_category() && code.value() <= NGHTTP2_HTTP_1_1_REQUIRED) {
    wire = static_cast<std::uint32_t>(code.value());
  } else if (code) {
    wire = NGHTTP2_INTERNAL_ERROR;
  }
  (void)nghttp2_submit_goaway(impl_->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(impl_->session), wire,
                              nullptr, 0);
}

std::uint32_t Session::peer_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(impl_->session,
                                             NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

std::size_t Session::open_streams() const { return impl_->streams.size(); }

bool Session::peer_sent_goaway() const { return impl_->peer_goaway; }

std::int32_t Session::peer_last_stream_id() const { return impl_->peer_last_stream_id; }

}  // namespace holdfast::http2
