// The custom BIO_METHOD behind every Engine: no buffer of its own, so an idle connection holds
// none.
#include "tls/bio.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include <openssl/bio.h>

namespace holdfast::tls {
namespace {

// Compact the input when at least this much has been consumed and it is more than half the vector.
constexpr std::size_t kCompactThreshold = 16 * 1024;

ByteQueues* queues_of(BIO* bio) { return static_cast<ByteQueues*>(BIO_get_data(bio)); }

int queue_read(BIO* bio, char* data, std::size_t len, std::size_t* read) {
  ByteQueues* q = queues_of(bio);
  BIO_clear_retry_flags(bio);
  const std::uint64_t allowed = q->read_limit - std::min(q->read_limit, q->consumed);
  const std::size_t n =
      static_cast<std::size_t>(std::min<std::uint64_t>(std::min(len, q->input_left()), allowed));
  if (n == 0) {
    if (!q->eof || allowed == 0) {
      BIO_set_retry_read(bio);
    }
    *read = 0;
    return 0;
  }
  std::memcpy(data, q->in.data() + q->in_pos, n);
  q->in_pos += n;
  q->consumed += n;
  if (q->in_pos == q->in.size()) {
    q->in.clear();
    q->in_pos = 0;
  }
  *read = n;
  return 1;
}

int queue_write(BIO* bio, const char* data, std::size_t len, std::size_t* written) {
  ByteQueues* q = queues_of(bio);
  BIO_clear_retry_flags(bio);
  q->out.insert(q->out.end(), data, data + len);
  *written = len;
  return 1;
}

long queue_ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
  const ByteQueues* q = queues_of(bio);
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;  // output is the caller's to send; nothing to flush here
    case BIO_CTRL_PENDING: return static_cast<long>(q->input_left());
    case BIO_CTRL_WPENDING: return static_cast<long>(q->output().size());
    case BIO_CTRL_EOF: return q->eof && q->input_left() == 0 ? 1 : 0;
    default: return 0;  // push/pop, kTLS and datagram controls: not supported
  }
}

int queue_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* queue_method() {
  static BIO_METHOD* method = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "holdfast queues");
    if (method != nullptr) {
      BIO_meth_set_read_ex(method, queue_read);
      BIO_meth_set_write_ex(method, queue_write);
      BIO_meth_set_ctrl(method, queue_ctrl);
      BIO_meth_set_create(method, queue_create);
    }
  });
  return method;
}

}  // namespace

void ByteQueues::push_input(std::span<const std::uint8_t> bytes) {
  if (in_pos >= kCompactThreshold && in_pos * 2 >= in.size()) {
    in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(in_pos));
    in_pos = 0;
  }
  in.insert(in.end(), bytes.begin(), bytes.end());
}

void ByteQueues::consume_output(std::size_t n) {
  out_pos += std::min(n, out.size() - out_pos);
  if (out_pos == out.size()) {
    out.clear();
    out_pos = 0;
  } else if (out_pos >= kCompactThreshold && out_pos * 2 >= out.size()) {
    out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(out_pos));
    out_pos = 0;
  }
}

bool ByteQueues::release() {
  if (input_left() != 0 || !output().empty()) {
    return false;
  }
  std::vector<std::uint8_t>().swap(in);
  std::vector<std::uint8_t>().swap(out);
  in_pos = 0;
  out_pos = 0;
  return true;
}

bio_st* new_queue_bio(ByteQueues* queues) {
  const BIO_METHOD* method = queue_method();
  if (method == nullptr) {
    return nullptr;
  }
  BIO* bio = BIO_new(method);
  if (bio != nullptr) {
    BIO_set_data(bio, queues);
  }
  return bio;
}

}  // namespace holdfast::tls
