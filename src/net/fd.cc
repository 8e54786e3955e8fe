// Fd: closing.
#include "net/fd.h"

#include <unistd.h>

namespace holdfast::net {

void Fd::reset(int fd) {
  if (fd_ >= 0 && fd_ != fd) {
    ::close(fd_);
  }
  fd_ = fd;
}

}  // namespace holdfast::net
