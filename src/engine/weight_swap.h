// A weight update of a running engine's model: checked at once (an error changes nothing), then
// applied between steps through Engine::run_exclusive, so no sequence mixes two weight versions.
// The Python package's LLM.update_weights / load_weights and the server's POST /v1/load_weights
// use it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/weight_update.h"

namespace bx {

// Returns the new weights_version. Throws bx::Error (nothing changed) for a bad source.
// `applied` (if set) runs right after the update, still inside the engine's exclusive section
// (before any request runs on the new weights): e.g. to record the new fingerprint.
uint64_t swap_weights(Engine& engine, LoadedModel& model, std::vector<WeightSource> sources,
                      InFlight in_flight, const std::function<void()>& applied = {});

// The same for the tensors of a safetensors file or a Hugging Face folder's checkpoint.
uint64_t swap_weights_from_file(Engine& engine, LoadedModel& model, const std::string& path,
                                InFlight in_flight, const std::function<void()>& applied = {});

}  // namespace bx
