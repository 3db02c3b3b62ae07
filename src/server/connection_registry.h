// The open client connections: a cap, and shedding of the oldest idle ones.
//
// Each connection has its own thread (ThreadPerConnection), so a slow or idle client holds only
// its own thread and never delays another request. At most max_connections are open at once:
// a new connection over the cap sheds (shuts down) the connection that has been idle longest —
// idle meaning it waits for a request or is still sending its headers, as a slowloris client
// does — and only when every open connection is busy with a request is the new one refused.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>

namespace bx::server {

class ConnectionRegistry {
 public:
  explicit ConnectionRegistry(size_t max_connections) : max_connections_(max_connections) {}

  // Registers fd; false (not registered) if the cap is reached and no connection is idle, or
  // the server is stopping.
  bool admit(int fd);
  void set_idle(int fd, bool idle);
  void remove(int fd);
  // Shuts down every registered connection and refuses new ones (server stop).
  void shutdown_all();

  size_t open() const;
  uint64_t shed() const;     // connections shut down to make room, so far
  uint64_t refused() const;  // connections refused because all were busy, so far

 private:
  struct Entry {
    bool idle = true;
    std::chrono::steady_clock::time_point idle_since;
  };
  mutable std::mutex mutex_;
  std::map<int, Entry> connections_;  // by fd; an fd is removed before it is closed
  size_t max_connections_;
  bool stopping_ = false;
  uint64_t shed_ = 0, refused_ = 0;
};

}  // namespace bx::server
