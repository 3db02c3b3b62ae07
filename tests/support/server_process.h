// A `bitexact serve` child process for tests: started on a free port (--port 0, the port read
// from its "listening on" line), ready once GET /health answers 200, and always stopped —
// SIGTERM, then SIGKILL after 5 s — when the object goes away, whatever the test did.
// Test code only.
#pragma once

#include <httplib.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bx::test {

class ServerProcess {
 public:
  // binary: the bitexact executable; args: everything after "serve" except --port.
  ServerProcess(const std::string& binary, std::vector<std::string> args) {
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    log_ = std::filesystem::temp_directory_path() /
           ("bitexact_server_" + std::to_string(::getpid()) + "_" + std::to_string(stamp));
    std::vector<std::string> argv_strings = {binary, "serve", "--port", "0", "--quiet"};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int out = ::open((log_.string() + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int err = ::open((log_.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> argv;
      for (std::string& s : argv_strings) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
  }

  ~ServerProcess() { stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Waits for the port and for /health 200. False (with why()) on timeout or early exit.
  bool wait_ready(double timeout_seconds = 60) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int>(timeout_seconds * 1000));
    const std::regex listening(R"(listening on http://([0-9.]+):([0-9]+))");
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        why_ = "the server exited early: " + read(".err");
        return false;
      }
      std::smatch m;
      const std::string out = read(".out");
      if (port_ == 0 && std::regex_search(out, m, listening)) port_ = std::stoi(m[2].str());
      if (port_ != 0) {
        httplib::Client client("127.0.0.1", port_);
        client.set_connection_timeout(1);
        if (auto res = client.Get("/health"); res && res->status == 200) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    why_ = "the server was not ready in time; stderr: " + read(".err");
    return false;
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
      }
    }
    std::error_code ignored;
    std::filesystem::remove(log_.string() + ".out", ignored);
    std::filesystem::remove(log_.string() + ".err", ignored);
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& why() const { return why_; }
  std::string stderr_text() const { return read(".err"); }

 private:
  std::string read(const char* suffix) const {
    std::ifstream in(log_.string() + suffix);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path log_;
  std::string why_;
};

}  // namespace bx::test
