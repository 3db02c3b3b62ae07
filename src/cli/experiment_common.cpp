// Pieces the determinism experiments share: loading per mode, random workloads, the concurrent
// client threads, and the JSON / Markdown report files.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/experiment.h"
#include "core/cpu_features.h"
#include "core/error.h"

namespace bx::cli::experiment {

std::vector<std::string> modes(const Flags& f) {
  if (f.mode_given) return {f.model.mode};
  return {"invariant", "fast"};
}

LoadedModel load_for_mode(const Flags& f, const std::string& mode, LoadOptions& load,
                          EngineOptions& engine) {
  apply_engine_flags(f.engine, load, engine);
  ModelFlags model_flags = f.model;
  model_flags.mode = mode;
  return load_with_progress(model_flags, load);
}

int uniform_int(std::mt19937_64& rng, int lo, int hi) {
  // Modulo of a 64-bit draw: the bias is below 2^-40 for these ranges, and the result is the
  // same with every standard library (std::uniform_int_distribution is not).
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<int>(rng() % span);
}

std::vector<int32_t> random_prompt(const LoadedModel& model, std::mt19937_64& rng, int max_len) {
  const int vocab = model.config.vocab_size;
  std::vector<int32_t> prompt;
  if (model.config.bos_token_id >= 0) prompt.push_back(model.config.bos_token_id);
  const int len = uniform_int(rng, 1, max_len);
  for (int i = 0; i < len; ++i) prompt.push_back(uniform_int(rng, 0, vocab - 1));
  return prompt;
}

std::vector<JobResult> run_clients(Engine& engine, const std::vector<Job>& jobs, int clients) {
  std::vector<JobResult> results(jobs.size());
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  const auto client = [&] {
    try {
      for (size_t i = next++; i < jobs.size(); i = next++) {
        if (jobs[i].delay_us > 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(jobs[i].delay_us));
        }
        const std::shared_ptr<RequestStream> stream = engine.submit(jobs[i].request);
        JobResult& r = results[i];
        while (std::optional<EngineEvent> e = stream->next()) {
          if (e->sample != 0) continue;
          if (e->kind == EngineEvent::Kind::token) {
            r.tokens.push_back(e->token);
            r.logprobs.push_back(e->logprob);
          } else if (e->kind == EngineEvent::Kind::finished) {
            r.finish = e->finish;
          }
        }
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      next = jobs.size();  // the others stop after their current job
    }
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) threads.emplace_back(client);
  for (std::thread& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  return results;
}

void StepLog::attach(Engine& engine) {
  engine.set_step_observer(
      [this](double, size_t tokens) { step_tokens.push_back(static_cast<uint32_t>(tokens)); });
}

nlohmann::json StepLog::summary() const {
  nlohmann::json j;
  j["steps"] = step_tokens.size();
  if (step_tokens.empty()) return j;
  uint64_t total = 0;
  std::vector<uint32_t> sorted = step_tokens;
  std::sort(sorted.begin(), sorted.end());
  for (uint32_t t : sorted) total += t;
  j["min_tokens_per_step"] = sorted.front();
  j["max_tokens_per_step"] = sorted.back();
  j["mean_tokens_per_step"] = static_cast<double>(total) / static_cast<double>(sorted.size());
  j["distinct_step_sizes"] = std::unique(sorted.begin(), sorted.end()) - sorted.begin();
  return j;
}

uint32_t bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

namespace {

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

nlohmann::json load_average() {
  std::istringstream in(read_first_line("/proc/loadavg"));
  double one = 0, five = 0, fifteen = 0;
  if (!(in >> one >> five >> fifteen)) return nullptr;
  return nlohmann::json::array({one, five, fifteen});
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(std::min(colon + 2, line.size()));
    }
  }
  return "unknown";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buffer;
}

// The command line that reproduces this run.
std::string command_line(const std::string& name, const Flags& f) {
  std::string c = "bitexact experiment " + name + " --model " + f.model.model_path + " --backend " +
                  f.model.backend;
  if (f.mode_given) c += " --mode " + f.model.mode;
  if (f.model.threads > 0) c += " --threads " + std::to_string(f.model.threads);
  c += " --requests " + std::to_string(f.requests) + " --max-tokens " +
       std::to_string(f.max_tokens) + " --clients " + std::to_string(f.clients);
  if (name == "uniqueness") {
    c += " --load-requests " + std::to_string(f.load_requests) + " --prompt '" + f.prompt + "'";
    if (f.stop_at_eos) c += " --stop-at-eos";
  }
  c += " --max-prompt-tokens " + std::to_string(f.max_prompt_tokens) + " --max-delay-us " +
       std::to_string(f.max_delay_us) + " --seed " + std::to_string(f.seed) + " --max-seqs " +
       std::to_string(f.engine.max_seqs) + " --max-batch-tokens " +
       std::to_string(f.engine.max_batch_tokens) + " --out " + f.out;
  return c;
}

}  // namespace

nlohmann::json report_header(const std::string& name, const Flags& f) {
  nlohmann::json r;
  r["experiment"] = name;
  r["command"] = command_line(name, f);
  r["date_utc"] = utc_now();
  r["machine"] = {{"cpu", cpu_model()},
                  {"hardware_threads", std::thread::hardware_concurrency()},
                  {"isa", std::string(isa_name(active_isa()))},
                  {"load_average_start", load_average()}};
  r["settings"] = {{"model", f.model.model_path},
                   {"backend", f.model.backend},
                   {"threads", resolve_threads(f.model.threads)},
                   {"requests", f.requests},
                   {"max_tokens", f.max_tokens},
                   {"clients", f.clients},
                   {"max_delay_us", f.max_delay_us},
                   {"max_prompt_tokens", f.max_prompt_tokens},
                   {"seed", f.seed},
                   {"max_seqs", f.engine.max_seqs},
                   {"max_batch_tokens", f.engine.max_batch_tokens}};
  return r;
}

void add_machine_end(nlohmann::json& report) {
  report["machine"]["load_average_end"] = load_average();
}

std::string markdown_header(const std::string& title, const nlohmann::json& report) {
  const nlohmann::json& m = report["machine"];
  std::string s = "# " + title + "\n\n";
  s += "- command: `" + report["command"].get<std::string>() + "`\n";
  s += "- date: " + report["date_utc"].get<std::string>() + "\n";
  s += "- machine: " + m["cpu"].get<std::string>() + ", " +
       std::to_string(m["hardware_threads"].get<unsigned>()) + " hardware threads, " +
       m["isa"].get<std::string>() + "; load average (1/5/15 min) at start " +
       m["load_average_start"].dump() + ", at end " + m["load_average_end"].dump() + "\n\n";
  return s;
}

void write_report(const Flags& f, const std::string& name, const nlohmann::json& report,
                  const std::string& markdown) {
  std::error_code ec;
  std::filesystem::create_directories(f.out, ec);
  check(!ec, "--out '" + f.out + "': cannot create the folder (" + ec.message() + ")");
  const std::string json_path = f.out + "/" + name + ".json";
  const std::string md_path = f.out + "/" + name + ".md";
  std::ofstream(json_path) << report.dump(1) << "\n";
  std::ofstream(md_path) << markdown;
  check(std::ifstream(json_path).good() && std::ifstream(md_path).good(),
        "--out '" + f.out + "': cannot write " + name + ".json / " + name + ".md there");
  std::printf("wrote %s and %s\n", json_path.c_str(), md_path.c_str());
}

}  // namespace bx::cli::experiment
