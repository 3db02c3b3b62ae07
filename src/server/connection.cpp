#include "server/connection.h"

#include <algorithm>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/connection_registry.h"

namespace bx::server {
namespace {

thread_local Connection* current_connection = nullptr;

constexpr size_t kRequestLineBytes = 8 << 10;
// Lingering close: at most this long and this many discarded bytes.
constexpr auto kLingerTime = std::chrono::milliseconds(1000);
constexpr size_t kLingerBytes = 4 << 20;

int poll_ms(std::chrono::steady_clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1'000'000));
}

// revents of one poll on fd, 0 on timeout.
short poll_one(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 ? p.revents : (r < 0 ? POLLERR : 0);
}

void address_of(const sockaddr_storage& addr, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
    port = ntohs(a.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
    ::inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    port = ntohs(a.sin6_port);
  }
  ip = text;
}

}  // namespace

Connection::Connection(int fd, ConnectionLimits limits, ConnectionRegistry& registry)
    : fd_(fd), limits_(limits), registry_(registry) {
  current_connection = this;
}

Connection::~Connection() {
  current_connection = nullptr;
}

Connection* Connection::current() {
  return current_connection;
}

bool Connection::wait_for_request() {
  phase_ = Phase::idle;
  registry_.set_idle(fd_, true);
  failure_ = Failure::none;
  header_bytes_ = 0;
  deadline_ = Clock::now() + limits_.keep_alive;
  if (buffered_from_ < buffered_to_) return true;  // a pipelined request is already here
  return wait_readable();
}

void Connection::start_headers() {
  phase_ = Phase::headers;
  deadline_ = Clock::now() + limits_.header_timeout;
}

void Connection::start_body() {
  phase_ = Phase::body;
  registry_.set_idle(fd_, false);
  deadline_ = Clock::now() + limits_.body_timeout;
}

void Connection::close_after_response(bool linger) {
  must_close_ = true;
  linger_ = linger_ || linger;
}

bool Connection::wait_readable() const {
  if (buffered_from_ < buffered_to_) return true;
  const auto left = deadline_ - Clock::now();
  const short revents = left > Clock::duration::zero() ? poll_one(fd_, POLLIN, poll_ms(left)) : 0;
  if (revents != 0) return true;  // readable, or EOF / error that recv reports
  if (phase_ == Phase::headers) failure_ = Failure::header_timeout;
  if (phase_ == Phase::body) failure_ = Failure::body_timeout;
  return false;
}

bool Connection::is_readable() const {
  return wait_readable();
}

bool Connection::is_writable() const {
  return (poll_one(fd_, POLLOUT, static_cast<int>(limits_.write_timeout.count())) & POLLOUT) != 0;
}

ssize_t Connection::read(char* ptr, size_t size) {
  if (phase_ == Phase::idle) start_headers();
  if (buffered_from_ == buffered_to_) {
    if (!wait_readable()) return -1;
    ssize_t n;
    do {
      n = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      failure_ = Failure::closed;
      return n;
    }
    buffered_from_ = 0;
    buffered_to_ = static_cast<size_t>(n);
  }
  size_t n = std::min(size, buffered_to_ - buffered_from_);
  if (phase_ == Phase::headers) {
    const size_t budget = limits_.max_header_bytes + kRequestLineBytes;
    if (header_bytes_ + n > budget) {
      failure_ = Failure::headers_too_large;
      return -1;
    }
    header_bytes_ += n;
  }
  std::copy_n(buffer_.data() + buffered_from_, n, ptr);
  buffered_from_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t Connection::write(const char* ptr, size_t size) {
  if (!is_writable()) return -1;
  ssize_t n;
  do {
    n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

void Connection::get_remote_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) address_of(addr, ip, port);
}

void Connection::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) address_of(addr, ip, port);
}

bool Connection::peer_closed() const {
  const short revents = poll_one(fd_, POLLIN | POLLRDHUP, 0);
  if ((revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
  if ((revents & POLLIN) != 0) {
    char byte;
    return ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
  return false;
}

void Connection::finish() {
  registry_.remove(fd_);
  if (linger_) {
    // The response is out; discard what the client still sends (nothing is kept) until it
    // closes, or the linger time or byte budget runs out.
    ::shutdown(fd_, SHUT_WR);
    const auto until = Clock::now() + kLingerTime;
    size_t discarded = 0;
    std::array<char, 4096> sink;
    while (discarded < kLingerBytes) {
      const auto left = until - Clock::now();
      if (left <= Clock::duration::zero() || poll_one(fd_, POLLIN, poll_ms(left)) == 0) break;
      const ssize_t n = ::recv(fd_, sink.data(), sink.size(), MSG_DONTWAIT);
      if (n <= 0) break;
      discarded += static_cast<size_t>(n);
    }
  }
  ::shutdown(fd_, SHUT_RDWR);
  ::close(fd_);
}

}  // namespace bx::server
