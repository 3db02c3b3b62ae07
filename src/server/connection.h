// One client connection as cpp-httplib's Stream, with deadlines on every read.
//
// cpp-httplib 0.11 bounds each single read by a timeout, so a client that drips one header byte
// at a time keeps a connection (and its thread) forever. Here every read checks a deadline of
// the request's current phase instead:
//   idle     waiting for the first byte of a request: keep_alive_seconds;
//   headers  request line and headers: header_timeout_seconds from the first byte, and at most
//            max_header_bytes (+ 8 KiB for the request line);
//   body     body_timeout_seconds from the end of the headers (HttpServer calls start_body).
// A read past its deadline or byte budget fails, and why is kept (failure()) so the server can
// answer 408 or 431. The connection registers itself in a ConnectionRegistry while open, marked
// idle while it waits for a request (idle and headers phases): those are the ones shed first.
#pragma once

#include <httplib.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <string>

namespace bx::server {

class ConnectionRegistry;

struct ConnectionLimits {
  std::chrono::milliseconds keep_alive{10'000};
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{10'000};
  std::chrono::milliseconds write_timeout{30'000};
  size_t max_header_bytes = 32 << 10;
};

class Connection : public httplib::Stream {
 public:
  enum class Failure { none, header_timeout, headers_too_large, body_timeout, closed };

  Connection(int fd, ConnectionLimits limits, ConnectionRegistry& registry);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The connection the calling thread serves (nullptr outside a connection's thread).
  static Connection* current();

  // Waits up to keep_alive for a request's first byte; false if none came (or the peer left).
  bool wait_for_request();
  void start_headers();  // the request's first byte is here: header deadline and byte budget
  void start_body();     // headers done: body deadline
  Failure failure() const { return failure_; }

  // Ends the connection after this response. linger: input is left unread (a rejected body),
  // so after the response the server discards what the client still sends, for a short
  // bounded time, before closing (else the kernel resets the connection and the client may
  // never read the response).
  void close_after_response(bool linger);
  bool must_close() const { return must_close_; }
  // Shuts the socket down and, if asked, lingers; then closes it.
  void finish();

  // True if the client has closed its end (EOF, hang-up or error); never blocks.
  bool peer_closed() const;
  int fd() const { return fd_; }

  // httplib::Stream
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

 private:
  enum class Phase { idle, headers, body, handling };
  using Clock = std::chrono::steady_clock;

  // Waits until the socket is readable before the phase's deadline; sets failure_ if not.
  bool wait_readable() const;

  int fd_;
  ConnectionLimits limits_;
  ConnectionRegistry& registry_;
  Phase phase_ = Phase::idle;
  Clock::time_point deadline_;
  size_t header_bytes_ = 0;
  mutable Failure failure_ = Failure::none;
  bool must_close_ = false;
  bool linger_ = false;
  std::array<char, 4096> buffer_{};
  size_t buffered_from_ = 0, buffered_to_ = 0;
};

}  // namespace bx::server
