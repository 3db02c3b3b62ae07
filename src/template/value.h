// Values of the Jinja template language, with Python's semantics (jinja2 evaluates templates as
// Python): how each kind prints (str), how it is quoted inside a container (repr), truthiness,
// equality, ordering, and the JSON conversions that the chat-template API and `tojson` need.
//
// Kinds: undefined (a missing variable or key; prints as "" and is false), none, bool, int
// (int64; Python's big ints are out of scope and overflow is an error), float (double, printed
// like Python's repr: 1.0, 0.1, 1e-05, 1e+16), string (UTF-8 bytes), list and tuple (immutable,
// shared), dict (string keys, insertion order, immutable, shared), namespace (the one mutable
// kind: `set ns.attr = ...`), callable (macros, builtins, bound methods).
//
// So that no template can build a value graph deep or cyclic enough to overflow the stack
// when it is printed, compared or destroyed: lists, tuples and dicts nest at most kMaxValueDepth
// levels, and a namespace never holds a namespace or a callable, directly or inside a container
// (jinja2 allows it; chat templates never do it). Loop objects are exempt: they never outlive
// their iteration's scope except by being copied into a list, which counts their depth.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace bx::tmpl {

struct Value;
using List = std::vector<Value>;

inline constexpr int kMaxValueDepth = 512;

// Insertion-ordered string-keyed map. Lookups are linear: template dicts are small.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);  // replaces in place or appends
};

// Arguments of a call: positional then keyword, as written.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  std::string name;  // for error messages: "raise_exception", "str.split", "macro m"
  std::function<Value(CallArgs&)> call;
};

struct Value {
  enum class Kind : uint8_t {
    undefined,
    none,
    boolean,
    integer,
    floating,
    string,
    list,
    tuple,
    dict,
    ns,
    callable
  };
  Kind kind = Kind::undefined;
  // Containers: 1 + the deepest element's depth (scalars 0); whether a namespace or callable is
  // inside.
  uint16_t depth = 0;
  bool holds_reference = false;
  bool boolean = false;
  int64_t integer = 0;
  double floating = 0;
  std::string string;  // the text for strings; for undefined, why it is undefined (for errors)
  std::shared_ptr<const List> list;  // list and tuple
  std::shared_ptr<Dict> dict;        // dict (never mutated once built) and namespace
  std::shared_ptr<const Callable> callable;

  static Value undefined(std::string why = {});
  static Value none();
  static Value from_bool(bool b);
  static Value from_int(int64_t i);
  static Value from_float(double f);
  static Value from_string(std::string s);
  static Value from_list(List items);
  static Value from_tuple(List items);
  static Value from_dict(Dict d);
  // Throws bx::Error when an attribute is (or holds) a namespace or callable, unless
  // `allow_references` (the interpreter's own loop objects).
  static Value make_namespace(Dict d, bool allow_references = false);
  static Value from_callable(std::string name, std::function<Value(CallArgs&)> fn);

  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_none() const { return kind == Kind::none; }
  bool is_string() const { return kind == Kind::string; }
  bool is_number() const {
    return kind == Kind::integer || kind == Kind::floating || kind == Kind::boolean;
  }
  bool is_sequence() const { return kind == Kind::list || kind == Kind::tuple; }
  bool is_mapping() const { return kind == Kind::dict; }
  bool is_callable() const { return kind == Kind::callable; }
  // A namespace or callable, or a container holding one: what a namespace may not store.
  bool is_reference() const {
    return kind == Kind::ns || kind == Kind::callable || holds_reference;
  }
  const List& items() const { return *list; }  // list or tuple only
};

// Python's type name, as jinja2's messages use it: "str", "int", "dict", "NoneType", ...
std::string type_name(const Value& v);

bool truthy(const Value& v);
// Python ==: 1 == 1.0 == True, containers element-wise, dicts ignoring order.
bool equals(const Value& a, const Value& b);
// Python <, for numbers, strings (code point order = UTF-8 byte order) and sequences.
// Throws bx::Error (without a position) for other pairs.
bool less_than(const Value& a, const Value& b);

// str(v): what `{{ v }}` prints. Undefined prints "".
std::string to_str(const Value& v);
// repr(v): how v prints inside a list or dict ('a', 1.0, None, True, [1, 2], {'k': 'v'}).
std::string to_repr(const Value& v);
// Python's repr of a float: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string format_python_float(double f);

// json.dumps(v, ensure_ascii=ensure_ascii, indent=indent, separators=..., sort_keys=sort_keys) as
// transformers' tojson filter calls it. indent < 0 means None (one line, ", " and ": ").
// Throws bx::Error for values JSON cannot hold (undefined, callables).
struct JsonFormat {
  int indent = -1;
  std::string item_separator;  // empty: Python's default for the indent
  std::string key_separator;
  bool separators_given = false;
  bool sort_keys = false;
  bool ensure_ascii = false;  // escape every non-ASCII character as \uXXXX
};
std::string to_json(const Value& v, const JsonFormat& format);

// nlohmann JSON -> Value (objects keep the order of the ordered_json they come from).
Value from_json(const nlohmann::ordered_json& j);

}  // namespace bx::tmpl
