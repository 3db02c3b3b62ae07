// Pieces shared by the bitexact subcommands.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "model/loader.h"

namespace CLI {
class App;
}

namespace bx::cli {

// Flags every model-loading command takes.
struct ModelFlags {
  std::string model_path;
  int threads = 0;  // 0 = all hardware threads
  bool quiet = false;
  std::string backend = "cpu";     // cpu | cuda
  std::string mode = "invariant";  // invariant | fast (cuda only: cuBLAS, not batch-invariant)
};
void add_model_flags(CLI::App& command, ModelFlags& flags);

// Loads the model, drawing a progress bar on stderr once loading has taken over a second
// (unless quiet).
LoadedModel load_with_progress(const ModelFlags& flags, LoadOptions options);

// The shortest decimal that reads back as exactly this float ("null" for inf or nan).
std::string format_float(float value);

// The --threads value: a positive count as given, 0 for every hardware thread.
int resolve_threads(int requested);

}  // namespace bx::cli
