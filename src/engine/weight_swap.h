// A weight update of a running engine's model: checked at once (an error changes nothing), then
// applied between steps through Engine::run_exclusive, so no sequence mixes two weight versions.
// The Python package's LLM.update_weights / load_weights and the server's POST /v1/load_weights
// use it.
#pragma once

#include <string>
#include <vector>

#include "engine/engine.h"
#include "model/weight_update.h"

namespace bx {

// Returns the new weights_version. Throws bx::Error (nothing changed) for a bad source.
uint64_t swap_weights(Engine& engine, LoadedModel& model, std::vector<WeightSource> sources,
                      InFlight in_flight);

// The same for the tensors of a safetensors file or a Hugging Face folder's checkpoint.
uint64_t swap_weights_from_file(Engine& engine, LoadedModel& model, const std::string& path,
                                InFlight in_flight);

}  // namespace bx
