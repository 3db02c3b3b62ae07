#include "server/connection_registry.h"

#include <sys/socket.h>

namespace bx::server {

bool ConnectionRegistry::admit(int fd) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  if (connections_.size() >= max_connections_) {
    auto oldest = connections_.end();
    for (auto it = connections_.begin(); it != connections_.end(); ++it) {
      if (it->second.idle &&
          (oldest == connections_.end() || it->second.idle_since < oldest->second.idle_since)) {
        oldest = it;
      }
    }
    if (oldest == connections_.end()) {
      ++refused_;
      return false;
    }
    // Its thread sees EOF, ends its loop, removes and closes it; until then the fd stays valid
    // (it is removed under this mutex before it is closed).
    ::shutdown(oldest->first, SHUT_RDWR);
    connections_.erase(oldest);
    ++shed_;
  }
  connections_[fd] = Entry{true, std::chrono::steady_clock::now()};
  return true;
}

void ConnectionRegistry::set_idle(int fd, bool idle) {
  std::lock_guard lock(mutex_);
  const auto it = connections_.find(fd);
  if (it == connections_.end() || it->second.idle == idle) return;
  it->second.idle = idle;
  if (idle) it->second.idle_since = std::chrono::steady_clock::now();
}

void ConnectionRegistry::remove(int fd) {
  std::lock_guard lock(mutex_);
  connections_.erase(fd);
}

void ConnectionRegistry::shutdown_all() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  for (const auto& [fd, entry] : connections_) ::shutdown(fd, SHUT_RDWR);
}

size_t ConnectionRegistry::open() const {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

uint64_t ConnectionRegistry::shed() const {
  std::lock_guard lock(mutex_);
  return shed_;
}

uint64_t ConnectionRegistry::refused() const {
  std::lock_guard lock(mutex_);
  return refused_;
}

}  // namespace bx::server
