// cpp-httplib's task queue with one thread per connection instead of a fixed pool, so a
// connection that waits (an idle keep-alive client, a slow sender, a long generation) never
// keeps another connection from being served. ConnectionRegistry caps how many are open.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

namespace bx::server {

class ThreadPerConnection : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      ++running_;
    }
    try {
      std::thread([this, fn = std::move(fn)] {
        fn();
        done();
      }).detach();
    } catch (const std::system_error&) {
      fn();  // no thread to be had: serve it on the accepting thread rather than drop it
      done();
    }
  }

  // Waits for every connection's thread to end (the server has shut their sockets down).
  void shutdown() override {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return running_ == 0; });
  }

 private:
  void done() {
    std::lock_guard lock(mutex_);
    if (--running_ == 0) idle_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable idle_;
  size_t running_ = 0;
};

}  // namespace bx::server
