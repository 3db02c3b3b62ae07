#include "engine/weight_swap.h"

namespace bx {

uint64_t swap_weights(Engine& engine, LoadedModel& model, std::vector<WeightSource> sources,
                      InFlight in_flight, const std::function<void()>& applied) {
  const WeightUpdatePlan plan = plan_weight_update(model, std::move(sources));
  uint64_t version = 0;
  engine.run_exclusive(
      [&] {
        apply_weight_update(model, plan);
        version = model.weights_version;
        if (applied) applied();
      },
      in_flight);
  return version;
}

uint64_t swap_weights_from_file(Engine& engine, LoadedModel& model, const std::string& path,
                                InFlight in_flight, const std::function<void()>& applied) {
  SafetensorsWeights weights = read_safetensors_weights(path);
  return swap_weights(engine, model, std::move(weights.sources), in_flight, applied);
}

}  // namespace bx
