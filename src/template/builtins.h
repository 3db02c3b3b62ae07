// The library a template can call: filters, tests, attribute and item access (with the methods
// of str, dict and list that chat templates use), iteration, and the global functions.
//
// Filters: abs, attr, capitalize, count, d/default, dictsort, e/escape, first, float, indent,
// int, items, join, last, length, list, lower, map, max, min, reject, rejectattr, replace,
// reverse, round, safe, select, selectattr, sort, string, sum, title, tojson (transformers':
// json.dumps with ensure_ascii=False and the given indent, separators, sort_keys), trim, unique,
// upper, wordcount.
// Tests: boolean, callable, defined, divisibleby, eq/equalto/==, even, false, filter, float,
// ge/>=, gt/>/greaterthan, in, integer, iterable, le/<=, lower, lt/</lessthan, mapping,
// ne/!=, none, number, odd, sameas, sequence, string, test, true, undefined, upper.
// Methods: str.{startswith, endswith, strip, lstrip, rstrip, split, rsplit, splitlines, replace,
// upper, lower, title, capitalize, find, rfind, count, join, removeprefix, removesuffix,
// isalpha, isdigit, isalnum, isspace, islower, isupper}; dict.{items, keys, values, get};
// list.{index, count}. Mutating methods are refused, as in jinja2's immutable sandbox.
// Globals: range (at most 100000 items, the sandbox's limit), dict, namespace,
// raise_exception, strftime_now.
// Case mapping (upper, lower, title, capitalize) covers ASCII letters only.
#pragma once

#include <string>

#include "template/template.h"
#include "template/value.h"

namespace bx::tmpl {

// What builtins need from the renderer.
class RenderLimits {
 public:
  explicit RenderLimits(const RenderOptions& options) : options_(options) {}
  const RenderOptions& options() const { return options_; }
  // Throws when a string or list of `size` bytes/items would pass the output limit, or when
  // building it would pass the work limit (every size checked is also counted as work).
  void check_size(size_t size);
  // For appending `appended` bytes to an output that then holds `total`: checks the total,
  // counts only the appended bytes as work.
  void check_append(size_t total, size_t appended);
  // Counts one loop iteration or call; throws past max_steps.
  void step();

 private:
  const RenderOptions& options_;
  uint64_t steps_ = 0;
  uint64_t work_ = 0;
};

Value apply_filter(RenderLimits& limits, const std::string& name, const Value& operand,
                   CallArgs& args);
bool apply_test(RenderLimits& limits, const std::string& name, const Value& operand,
                CallArgs& args);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);

// obj.name: methods first, then keys (jinja2's getattr).
Value get_attribute(const Value& obj, const std::string& name);
// obj[key]: keys and indexes first, then methods (jinja2's getitem).
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step], Python semantics (null Values are absent parts).
Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step);
// The items a for loop visits: list items, dict keys, string code points, nothing for undefined.
List iterate(const Value& v);
// Python's `needle in haystack`.
bool contains(const Value& haystack, const Value& needle);

// Throws the error an undefined value carries when it is used as more than "nothing".
[[noreturn]] void fail_undefined(const Value& v);

// Adds range, dict, namespace, raise_exception and strftime_now to `globals` (unless present).
void add_globals(Dict& globals, RenderLimits& limits);

}  // namespace bx::tmpl
