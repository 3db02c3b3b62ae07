// bitexact._core: the nanobind bindings of python::Llm (llm.h) that python/bitexact wraps.
// Results come back as plain dicts and lists; logprobs are Python floats holding the engine's
// float32 values exactly. Every call that waits for the engine releases the GIL.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>

#include "core/error.h"
#include "python/llm.h"

namespace nb = nanobind;

// bitexact.torch's kernel entry points (src/python/torch_kernels.cpp).
void bind_torch_kernels(nb::module_& m);

namespace bx::python {
namespace {

nb::list top_list(const std::vector<TokenLogprob>& top) {
  nb::list out;
  for (const TokenLogprob& t : top) out.append(nb::make_tuple(t.token, t.logprob));
  return out;
}

nb::dict sample_dict(const Sample& s) {
  const Completion& c = s.completion;
  nb::dict d;
  d["token_ids"] = c.tokens;
  d["logprobs"] = c.logprobs;
  nb::list tops;
  for (const auto& top : c.top_logprobs) tops.append(top_list(top));
  d["top_logprobs"] = tops;
  d["text"] = c.text;
  d["finish_reason"] = std::string(finish_reason_name(c.finish));
  d["stop_reason"] = c.stop_reason;
  d["bitexact_hash"] = s.bitexact_hash;
  d["weights_version"] = s.weights_version;
  d["system_fingerprint"] = s.system_fingerprint;
  d["prompt_logprobs"] = c.prompt_logprobs;
  return d;
}

nb::object event_object(const EngineEvent& e) {
  nb::dict d;
  switch (e.kind) {
    case EngineEvent::Kind::token:
      d["kind"] = "token";
      d["token_id"] = e.token;
      d["logprob"] = e.logprob;
      d["top_logprobs"] = top_list(e.top_logprobs);
      break;
    case EngineEvent::Kind::finished:
      d["kind"] = "finished";
      d["finish_reason"] = std::string(finish_reason_name(e.finish));
      d["stop_reason"] = e.stop_reason;
      break;
    case EngineEvent::Kind::scored:
      d["kind"] = "scored";
      d["prompt_logprobs"] = e.prompt_logprobs;
      break;
  }
  d["sample"] = e.sample;
  d["text"] = e.text;
  return d;
}

InFlight in_flight_of(const std::string& name) {
  if (name == "finish") return InFlight::finish;
  if (name == "abort") return InFlight::abort;
  throw Error("in_flight is '" + name + "', expected 'finish' (requests in flight end on the " +
              "old weights first) or 'abort' (they end now with finish_reason 'abort')");
}

// (name, tensor) pairs -> sources over the tensors' memory (kept alive by the caller's list).
std::vector<WeightSource> sources_of(
    const std::vector<std::pair<std::string, nb::ndarray<nb::ro>>>& tensors) {
  std::vector<WeightSource> out;
  for (const auto& [name, a] : tensors) {
    WeightSource s;
    s.name = name;
    const auto quoted = "'" + name + "'";
    if (a.dtype() == nb::dtype<float>()) {
      s.dtype = DType::f32;
    } else if (a.dtype() ==
               nb::dlpack::dtype{static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat), 16, 1}) {
      s.dtype = DType::bf16;
    } else {
      throw Error("update_weights: " + quoted + " is not float32 or bfloat16; nothing was changed");
    }
    check(a.device_type() == nb::device::cpu::value || a.device_type() == nb::device::cuda::value,
          "update_weights: " + quoted + " is neither in host memory nor on a CUDA device; " +
              "nothing was changed");
    s.on_device = a.device_type() == nb::device::cuda::value;
    check(!s.on_device || a.device_id() == 0,
          "update_weights: " + quoted + " is on cuda:" + std::to_string(a.device_id()) +
              ", expected cuda:0 (the engine's device); nothing was changed");
    int64_t expected_stride = 1;
    for (size_t d = a.ndim(); d-- > 0;) {
      check(a.shape(d) == 1 || a.stride(d) == expected_stride,
            "update_weights: " + quoted + " is not contiguous (row-major); pass " +
                "tensor.contiguous() or numpy.ascontiguousarray; nothing was changed");
      expected_stride *= static_cast<int64_t>(a.shape(d));
    }
    for (size_t d = 0; d < a.ndim(); ++d) s.shape.push_back(static_cast<int64_t>(a.shape(d)));
    s.data = a.data();
    out.push_back(std::move(s));
  }
  return out;
}

EngineRequest make_request(std::vector<int32_t> prompt, float temperature, float top_p,
                           int32_t top_k, float min_p, uint64_t seed, int max_tokens,
                           int min_tokens, std::vector<std::string> stop,
                           std::vector<int32_t> stop_token_ids, bool ignore_eos, int n,
                           int top_logprobs, bool prompt_logprobs) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = temperature;
  r.sampling.top_p = top_p;
  r.sampling.top_k = top_k;
  r.sampling.min_p = min_p;
  r.sampling.seed = seed;
  r.max_tokens = max_tokens;
  r.min_tokens = min_tokens;
  r.stop = std::move(stop);
  r.stop_token_ids = std::move(stop_token_ids);
  r.ignore_eos = ignore_eos;
  r.n = n;
  r.top_logprobs = top_logprobs;
  r.prompt_logprobs = prompt_logprobs;
  return r;
}

}  // namespace
}  // namespace bx::python

NB_MODULE(_core, m) {
  using namespace bx;
  using namespace bx::python;
  m.doc() = "bitexact's C++ engine (wrapped by the bitexact package)";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const bx::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  nb::class_<EngineRequest>(m, "Request")
      .def(
          "__init__",
          [](EngineRequest* self, std::vector<int32_t> prompt, float temperature, float top_p,
             int32_t top_k, float min_p, uint64_t seed, int max_tokens, int min_tokens,
             std::vector<std::string> stop, std::vector<int32_t> stop_token_ids, bool ignore_eos,
             int n, int top_logprobs, bool prompt_logprobs) {
            new (self) EngineRequest(make_request(std::move(prompt), temperature, top_p, top_k,
                                                  min_p, seed, max_tokens, min_tokens,
                                                  std::move(stop), std::move(stop_token_ids),
                                                  ignore_eos, n, top_logprobs, prompt_logprobs));
          },
          nb::arg("prompt"), nb::arg("temperature"), nb::arg("top_p"), nb::arg("top_k"),
          nb::arg("min_p"), nb::arg("seed"), nb::arg("max_tokens"), nb::arg("min_tokens"),
          nb::arg("stop"), nb::arg("stop_token_ids"), nb::arg("ignore_eos"), nb::arg("n"),
          nb::arg("top_logprobs"), nb::arg("prompt_logprobs"));

  nb::class_<RequestStream>(m, "Stream")
      .def(
          "next_event",
          [](RequestStream& s) -> nb::object {
            std::optional<EngineEvent> e;
            {
              nb::gil_scoped_release release;
              e = s.next();
            }
            if (!e) return nb::none();
            return event_object(*e);
          },
          "The next event (blocking), or None once every sample has finished")
      .def("cancel", &RequestStream::cancel)
      .def_prop_ro("weights_version", &RequestStream::weights_version);

  nb::class_<Llm>(m, "Engine")
      .def(
          "__init__",
          [](Llm* self, const std::string& model, const std::string& backend,
             const std::string& mode, int threads, int max_batch_tokens, int max_seqs,
             int prefill_chunk, int kv_block_size, int64_t kv_cache_tokens, bool prefix_cache) {
            LlmOptions o;
            o.backend = backend;
            o.mode = mode;
            o.threads = threads;
            o.max_batch_tokens = max_batch_tokens;
            o.max_seqs = max_seqs;
            o.prefill_chunk = prefill_chunk;
            o.kv_block_size = kv_block_size;
            o.kv_cache_tokens = kv_cache_tokens;
            o.prefix_cache = prefix_cache;
            nb::gil_scoped_release release;
            new (self) Llm(model, o);
          },
          nb::arg("model"), nb::arg("backend"), nb::arg("mode"), nb::arg("threads"),
          nb::arg("max_batch_tokens"), nb::arg("max_seqs"), nb::arg("prefill_chunk"),
          nb::arg("kv_block_size"), nb::arg("kv_cache_tokens"), nb::arg("prefix_cache"))
      .def("generate",
           [](Llm& llm, std::vector<EngineRequest> requests) {
             std::vector<std::vector<Sample>> results;
             {
               nb::gil_scoped_release release;
               results = llm.generate(std::move(requests));
             }
             nb::list out;
             for (const auto& samples : results) {
               nb::list l;
               for (const Sample& s : samples) l.append(sample_dict(s));
               out.append(l);
             }
             return out;
           })
      .def("submit",
           [](Llm& llm, EngineRequest request) {
             nb::gil_scoped_release release;
             return llm.submit(std::move(request));
           })
      .def("score",
           [](Llm& llm, const std::vector<std::vector<int32_t>>& prompts,
              const std::vector<std::vector<int32_t>>& continuations, bool prompt_logprobs) {
             std::vector<Scored> results;
             {
               nb::gil_scoped_release release;
               results = llm.score(prompts, continuations, prompt_logprobs);
             }
             nb::list out;
             for (const Scored& s : results) {
               nb::dict d;
               d["logprobs"] = s.logprobs;
               d["prompt_logprobs"] = s.prompt_logprobs;
               d["bitexact_hash"] = s.bitexact_hash;
               d["weights_version"] = s.weights_version;
               out.append(d);
             }
             return out;
           })
      .def("update_weights",
           [](Llm& llm, const std::vector<std::pair<std::string, nb::ndarray<nb::ro>>>& tensors,
              const std::string& in_flight) {
             std::vector<WeightSource> sources = sources_of(tensors);
             const InFlight policy = in_flight_of(in_flight);
             nb::gil_scoped_release release;
             return llm.update_weights(std::move(sources), policy);
           })
      .def("load_weights",
           [](Llm& llm, const std::string& path, const std::string& in_flight) {
             const InFlight policy = in_flight_of(in_flight);
             nb::gil_scoped_release release;
             return llm.load_weights(path, policy);
           })
      .def("reset_prefix_cache",
           [](Llm& llm) {
             nb::gil_scoped_release release;
             llm.reset_prefix_cache();
           })
      .def_prop_ro("weights_version", &Llm::weights_version)
      .def_prop_ro("fingerprint", &Llm::fingerprint)
      .def_prop_ro("device_is_cuda", &Llm::device_is_cuda)
      .def_prop_ro("vocab_size", [](const Llm& llm) { return llm.model().config.vocab_size; })
      .def_prop_ro("context_length",
                   [](const Llm& llm) { return llm.model().config.context_length; })
      .def_prop_ro("eos_token_ids", [](const Llm& llm) { return llm.model().config.eos_token_ids; })
      .def_prop_ro("has_tokenizer", [](const Llm& llm) { return llm.model().tokenizer != nullptr; })
      .def("encode", [](const Llm& llm, const std::string& text,
                        bool add_special) { return llm.tokenizer().encode(text, add_special); })
      .def("decode",
           [](const Llm& llm, const std::vector<int32_t>& ids, bool skip_special) {
             const Tokenizer& t = llm.tokenizer();
             for (int32_t id : ids) {
               check(id >= 0 && id < t.vocab_size(), "decode: token id " + std::to_string(id) +
                                                         " is outside the vocabulary [0, " +
                                                         std::to_string(t.vocab_size()) + ")");
             }
             return t.decode(ids, skip_special);
           })
      .def_prop_ro("bos_token_id", [](const Llm& llm) { return llm.tokenizer().bos_id(); })
      .def("apply_chat_template", &Llm::apply_chat_template);

  nb::module_ torch_kernels =
      m.def_submodule("torch_kernels", "the engine's kernels on tensor memory (bitexact.torch)");
  bind_torch_kernels(torch_kernels);
}
