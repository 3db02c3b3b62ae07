// A parsed Jinja template and its renderer: the subset of jinja2 that model chat templates use,
// evaluated with the environment transformers' apply_chat_template sets up
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, and the globals
// raise_exception and strftime_now, and its own tojson filter).
//
// Supported: see lexer.h (whitespace control), parser.h (statements and expressions) and
// builtins.h (filters, tests, methods, globals). Values behave as in Python (value.h).
// Scoping follows jinja2: a for-loop body gets a fresh scope each iteration (assignments do not
// survive the iteration or leak out; use a namespace), `if` has no scope, a macro sees the scope
// it was defined in as it is when the macro is called.
//
// Errors (syntax at parse time, type errors and raise_exception at render time) are bx::Error
// "template:LINE:COL: message". Limits keep a hostile template from exhausting the process:
// nesting depth (parser.h), call and evaluation depth, loop iterations, output size, the total
// size of the strings and lists built, value nesting (value.h).
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "template/value.h"

namespace bx::tmpl {

struct RenderOptions {
  // The time strftime_now() formats (local time); unset means the current time.
  std::optional<std::time_t> now;
  size_t max_output_bytes = size_t{64} << 20;  // also bounds every string built while rendering
  int max_depth = 400;                         // nested macro calls, evaluations and statements
  uint64_t max_steps = 20'000'000;             // loop iterations plus macro calls
  // Bytes (or list items) of all the strings and lists built by concatenation, repetition,
  // join, replace and tojson, added up: bounds the time a template can spend copying.
  uint64_t max_work = uint64_t{1} << 30;
};

struct Stmt;

class Template {
 public:
  // Parses `source`; throws bx::Error "template:LINE:COL: ..." for a syntax error.
  explicit Template(std::string_view source);

  // Renders with `context` as the global variables (messages, add_generation_prompt, ...).
  // Globals range, dict, namespace, raise_exception and strftime_now are provided unless the
  // context defines the same name.
  std::string render(const Dict& context, const RenderOptions& options = {}) const;

 private:
  struct Parsed;
  std::shared_ptr<const Parsed> parsed_;
};

}  // namespace bx::tmpl
