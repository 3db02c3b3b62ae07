#include "template/builtins.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "template/unicode.h"

namespace bx::tmpl {

void RenderLimits::check_size(size_t size) {
  check_append(size, size);
}

void RenderLimits::check_append(size_t total, size_t appended) {
  check(total <= options_.max_output_bytes, "result too large: " + std::to_string(total) +
                                                " bytes or items, the limit is " +
                                                std::to_string(options_.max_output_bytes));
  work_ += appended;
  check(work_ <= options_.max_work, "template built more than " +
                                        std::to_string(options_.max_work) +
                                        " bytes of strings and lists in all; stopped");
}

void RenderLimits::step() {
  check(++steps_ <= options_.max_steps, "template ran more than " +
                                            std::to_string(options_.max_steps) +
                                            " loop iterations and calls; stopped");
}

void fail_undefined(const Value& v) {
  throw Error(v.string.empty() ? std::string("value is undefined") : v.string);
}

namespace {

// ----- argument binding

// The parameter at `index` (positional) or named `name` (keyword), or null.
const Value* arg(const CallArgs& a, size_t index, const char* name) {
  if (index < a.positional.size()) return &a.positional[index];
  for (const auto& [k, v] : a.keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Refuses more positional arguments than `names` and keywords not in `names`.
void check_args(const CallArgs& a, const std::string& fn,
                std::initializer_list<const char*> names) {
  check(a.positional.size() <= names.size(), fn + "() takes at most " +
                                                 std::to_string(names.size()) + " argument(s), " +
                                                 std::to_string(a.positional.size()) + " given");
  for (const auto& [k, v] : a.keyword) {
    bool known = false;
    size_t index = 0;
    for (const char* n : names) {
      if (k == n) {
        known = true;
        check(index >= a.positional.size(), fn + "() got multiple values for argument '" + k + "'");
      }
      ++index;
    }
    check(known, fn + "() got an unexpected keyword argument '" + k + "'");
  }
}

const std::string& need_string(const Value& v, const std::string& what) {
  if (v.is_undefined()) fail_undefined(v);
  check(v.is_string(), what + " must be a string, not '" + type_name(v) + "'");
  return v.string;
}

int64_t need_int(const Value& v, const std::string& what) {
  if (v.is_undefined()) fail_undefined(v);
  check(v.kind == Value::Kind::integer || v.kind == Value::Kind::boolean,
        what + " must be an integer, not '" + type_name(v) + "'");
  return v.kind == Value::Kind::boolean ? (v.boolean ? 1 : 0) : v.integer;
}

double need_number(const Value& v, const std::string& what) {
  if (v.is_undefined()) fail_undefined(v);
  check(v.is_number(), what + " must be a number, not '" + type_name(v) + "'");
  if (v.kind == Value::Kind::floating) return v.floating;
  return static_cast<double>(need_int(v, what));
}

Value bound(std::string name, std::function<Value(CallArgs&)> fn) {
  return Value::from_callable(std::move(name), std::move(fn));
}

// ----- string helpers

std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string ascii_upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string capitalize(const std::string& s) {
  std::string out = ascii_lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}
bool is_ascii_alpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}

// str.title(): a letter after a letter is lowered, any other letter raised.
std::string python_title(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    if (is_ascii_alpha(c)) {
      c = static_cast<char>(prev_cased ? std::tolower(static_cast<unsigned char>(c))
                                       : std::toupper(static_cast<unsigned char>(c)));
      prev_cased = true;
    } else {
      prev_cased = static_cast<unsigned char>(c) >= 0x80 && prev_cased;
    }
  }
  return out;
}

bool is_line_break(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
         cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

std::vector<std::string> splitlines(const std::string& s, bool keepends) {
  std::vector<std::string> lines;
  size_t line_start = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t at = pos;
    const uint32_t cp = decode_utf8(s, pos);
    if (!is_line_break(cp)) continue;
    size_t end = pos;
    if (cp == '\r' && pos < s.size() && s[pos] == '\n') end = ++pos;
    lines.push_back(s.substr(line_start, (keepends ? end : at) - line_start));
    line_start = end;
  }
  if (line_start < s.size()) lines.push_back(s.substr(line_start));
  return lines;
}

// str.split(sep, maxsplit) / str.rsplit: sep null splits on runs of whitespace.
List python_split(const std::string& s, const Value* sep_value, int64_t maxsplit, bool from_right) {
  List out;
  if (sep_value && !sep_value->is_none()) {
    const std::string& sep = need_string(*sep_value, "split() separator");
    check(!sep.empty(), "empty separator");
    std::vector<std::string> parts;
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t at = s.find(sep, start);
        if (at == std::string::npos) break;
        parts.push_back(s.substr(start, at - start));
        start = at + sep.size();
      }
      parts.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      std::vector<std::string> reversed;
      while (maxsplit < 0 || static_cast<int64_t>(reversed.size()) < maxsplit) {
        if (end < sep.size()) break;
        const size_t at = s.rfind(sep, end - sep.size());
        if (at == std::string::npos) break;
        reversed.push_back(s.substr(at + sep.size(), end - at - sep.size()));
        end = at;
      }
      reversed.push_back(s.substr(0, end));
      parts.assign(reversed.rbegin(), reversed.rend());
    }
    for (auto& p : parts) out.push_back(Value::from_string(std::move(p)));
    return out;
  }
  // Whitespace runs; words as byte ranges.
  std::vector<std::pair<size_t, size_t>> words;
  size_t pos = 0;
  size_t word_start = std::string::npos;
  while (pos < s.size()) {
    const size_t at = pos;
    const bool space = is_python_space(decode_utf8(s, pos));
    if (space && word_start != std::string::npos) {
      words.emplace_back(word_start, at);
      word_start = std::string::npos;
    } else if (!space && word_start == std::string::npos) {
      word_start = at;
    }
  }
  if (word_start != std::string::npos) words.emplace_back(word_start, s.size());
  if (maxsplit < 0 || words.size() <= static_cast<size_t>(maxsplit)) {
    for (const auto& [a, b] : words) out.push_back(Value::from_string(s.substr(a, b - a)));
    return out;
  }
  const size_t n = static_cast<size_t>(maxsplit);
  if (!from_right) {
    for (size_t i = 0; i < n; ++i) {
      out.push_back(Value::from_string(s.substr(words[i].first, words[i].second - words[i].first)));
    }
    // The rest, from the next word to the end (trailing whitespace kept, as in Python).
    out.push_back(Value::from_string(s.substr(words[n].first)));
  } else {
    const size_t keep = words.size() - n;
    out.push_back(Value::from_string(s.substr(0, words[keep - 1].second)));
    for (size_t i = keep; i < words.size(); ++i) {
      out.push_back(Value::from_string(s.substr(words[i].first, words[i].second - words[i].first)));
    }
  }
  return out;
}

std::string python_replace(const std::string& s, const std::string& old_text,
                           const std::string& new_text, int64_t count, RenderLimits& limits) {
  std::string out;
  int64_t done = 0;
  if (old_text.empty()) {
    const std::vector<std::string> cps = code_points(s);
    for (const std::string& cp : cps) {
      const size_t before = out.size();
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      out += cp;
      limits.check_append(out.size(), out.size() - before);
    }
    if (count < 0 || done < count) out += new_text;
    return out;
  }
  size_t start = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(old_text, start);
    if (at == std::string::npos) break;
    const size_t before = out.size();
    out.append(s, start, at - start);
    out += new_text;
    limits.check_append(out.size(), out.size() - before);
    start = at + old_text.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

// Python's prefix/suffix tests accept one string or a tuple of strings.
bool affix_matches(const std::string& s, const Value& affix, bool prefix) {
  const auto one = [&](const Value& a) {
    const std::string& t = need_string(a, prefix ? "startswith() argument" : "endswith() argument");
    if (t.size() > s.size()) return false;
    return prefix ? s.compare(0, t.size(), t) == 0
                  : s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  if (affix.is_sequence()) {
    for (const Value& a : affix.items()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

int64_t code_point_index(const std::string& s, size_t byte_offset) {
  return static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, byte_offset)));
}

bool all_chars(const std::string& s, int (*pred)(int)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

Value string_method(const std::string& self, const std::string& name) {
  const std::string s = self;
  const std::string fn = "str." + name;
  if (name == "startswith" || name == "endswith") {
    const bool prefix = name == "startswith";
    return bound(fn, [s, fn, prefix](CallArgs& a) {
      check(a.positional.size() == 1 && a.keyword.empty(), fn + "() takes one argument");
      return Value::from_bool(affix_matches(s, a.positional[0], prefix));
    });
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip";
    const bool right = name != "lstrip";
    return bound(fn, [s, fn, left, right](CallArgs& a) {
      check_args(a, fn, {"chars"});
      const Value* chars = arg(a, 0, "chars");
      const std::string set =
          chars && !chars->is_none() ? need_string(*chars, fn + "() argument") : std::string();
      if (chars && !chars->is_none() && set.empty()) return Value::from_string(s);
      return Value::from_string(python_strip(s, set, left, right));
    });
  }
  if (name == "split" || name == "rsplit") {
    const bool right = name == "rsplit";
    return bound(fn, [s, fn, right](CallArgs& a) {
      check_args(a, fn, {"sep", "maxsplit"});
      const Value* maxsplit = arg(a, 1, "maxsplit");
      return Value::from_list(python_split(s, arg(a, 0, "sep"),
                                           maxsplit ? need_int(*maxsplit, "maxsplit") : -1, right));
    });
  }
  if (name == "splitlines") {
    return bound(fn, [s, fn](CallArgs& a) {
      check_args(a, fn, {"keepends"});
      const Value* keep = arg(a, 0, "keepends");
      List out;
      for (auto& line : splitlines(s, keep && truthy(*keep))) {
        out.push_back(Value::from_string(std::move(line)));
      }
      return Value::from_list(std::move(out));
    });
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" ||
      name == "isalpha" || name == "isdigit" || name == "isalnum" || name == "isspace" ||
      name == "islower" || name == "isupper") {
    return bound(fn, [s, fn, name](CallArgs& a) {
      check(a.positional.empty() && a.keyword.empty(), fn + "() takes no arguments");
      if (name == "upper") return Value::from_string(ascii_upper(s));
      if (name == "lower") return Value::from_string(ascii_lower(s));
      if (name == "title") return Value::from_string(python_title(s));
      if (name == "capitalize") return Value::from_string(capitalize(s));
      if (name == "isalpha") return Value::from_bool(all_chars(s, std::isalpha));
      if (name == "isdigit") return Value::from_bool(all_chars(s, std::isdigit));
      if (name == "isalnum") return Value::from_bool(all_chars(s, std::isalnum));
      if (name == "isspace") {
        bool all = !s.empty();
        for (size_t p = 0; p < s.size() && all;) all = is_python_space(decode_utf8(s, p));
        return Value::from_bool(all);
      }
      const bool has_lower =
          std::any_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
      const bool has_upper =
          std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
      return Value::from_bool(name == "islower" ? has_lower && !has_upper
                                                : has_upper && !has_lower);
    });
  }
  if (name == "replace") {
    return bound(fn, [s, fn](CallArgs& a) {
      check_args(a, fn, {"old", "new", "count"});
      const Value* o = arg(a, 0, "old");
      const Value* n = arg(a, 1, "new");
      check(o && n, fn + "() needs the old and new strings");
      const Value* count = arg(a, 2, "count");
      RenderOptions unlimited;
      RenderLimits limits(unlimited);
      return Value::from_string(python_replace(s, need_string(*o, "replace() old"),
                                               need_string(*n, "replace() new"),
                                               count ? need_int(*count, "count") : -1, limits));
    });
  }
  if (name == "find" || name == "rfind" || name == "count") {
    return bound(fn, [s, fn, name](CallArgs& a) {
      check(a.positional.size() == 1 && a.keyword.empty(),
            fn + "() takes one argument here (start and end are not supported)");
      const std::string& sub = need_string(a.positional[0], fn + "() argument");
      if (name == "count") {
        if (sub.empty()) return Value::from_int(static_cast<int64_t>(code_point_count(s)) + 1);
        int64_t n = 0;
        for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size()))
          ++n;
        return Value::from_int(n);
      }
      const size_t at = name == "find" ? s.find(sub) : s.rfind(sub);
      return Value::from_int(at == std::string::npos ? -1 : code_point_index(s, at));
    });
  }
  if (name == "join") {
    return bound(fn, [s, fn](CallArgs& a) {
      check(a.positional.size() == 1 && a.keyword.empty(), fn + "() takes one argument");
      std::string out;
      bool first = true;
      for (const Value& v : iterate(a.positional[0])) {
        if (!first) out += s;
        first = false;
        out += need_string(v, "join() item");
      }
      return Value::from_string(std::move(out));
    });
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const bool prefix = name == "removeprefix";
    return bound(fn, [s, fn, prefix](CallArgs& a) {
      check(a.positional.size() == 1 && a.keyword.empty(), fn + "() takes one argument");
      const std::string& t = need_string(a.positional[0], fn + "() argument");
      if (!affix_matches(s, a.positional[0], prefix)) return Value::from_string(s);
      return Value::from_string(prefix ? s.substr(t.size()) : s.substr(0, s.size() - t.size()));
    });
  }
  if (name == "format") {
    return bound(fn, [fn](CallArgs&) -> Value { throw Error(fn + "() is not supported"); });
  }
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value unsafe_method(const std::string& type, const std::string& name) {
  return bound(type + "." + name, [type, name](CallArgs&) -> Value {
    throw Error("access to attribute '" + name + "' of '" + type +
                "' object is unsafe (templates cannot modify values)");
  });
}

Value items_of(const Dict& d) {
  List out;
  out.reserve(d.items.size());
  for (const auto& [k, v] : d.items) out.push_back(Value::from_tuple({Value::from_string(k), v}));
  return Value::from_list(std::move(out));
}

Value dict_method(const Value& self, const std::string& name) {
  const std::shared_ptr<Dict> d = self.dict;
  if (name == "items" || name == "keys" || name == "values") {
    return bound("dict." + name, [d, name](CallArgs& a) {
      check(a.positional.empty() && a.keyword.empty(), "dict." + name + "() takes no arguments");
      if (name == "items") return items_of(*d);
      List out;
      for (const auto& [k, v] : d->items) {
        out.push_back(name == "keys" ? Value::from_string(k) : v);
      }
      return Value::from_list(std::move(out));
    });
  }
  if (name == "get") {
    return bound("dict.get", [d](CallArgs& a) {
      check(!a.positional.empty() && a.positional.size() <= 2 && a.keyword.empty(),
            "dict.get() takes a key and an optional default");
      const Value& key = a.positional[0];
      if (key.is_string()) {
        if (const Value* v = d->find(key.string)) return *v;
      }
      return a.positional.size() == 2 ? a.positional[1] : Value::none();
    });
  }
  static const char* const kUnsafe[] = {"pop", "popitem", "setdefault", "update", "clear"};
  for (const char* u : kUnsafe) {
    if (name == u) return unsafe_method("dict", name);
  }
  return Value::undefined();
}

Value list_method(const Value& self, const std::string& name) {
  const std::shared_ptr<const List> l = self.list;
  const std::string type = type_name(self);
  if (name == "index" || name == "count") {
    return bound(type + "." + name, [l, name, type](CallArgs& a) {
      check(a.positional.size() == 1 && a.keyword.empty(),
            type + "." + name + "() takes one argument");
      int64_t n = 0;
      for (size_t i = 0; i < l->size(); ++i) {
        if (equals((*l)[i], a.positional[0])) {
          if (name == "index") return Value::from_int(static_cast<int64_t>(i));
          ++n;
        }
      }
      check(name == "count", to_repr(a.positional[0]) + " is not in " + type);
      return Value::from_int(n);
    });
  }
  static const char* const kUnsafe[] = {"append", "extend",  "insert", "pop",
                                        "remove", "reverse", "sort",   "clear"};
  for (const char* u : kUnsafe) {
    if (name == u) return unsafe_method(type, name);
  }
  return Value::undefined();
}

}  // namespace

Value get_attribute(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Value::Kind::undefined:
      fail_undefined(obj);
    case Value::Kind::dict: {
      Value method = dict_method(obj, name);
      if (!method.is_undefined()) return method;
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Value::Kind::ns:
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined("'Namespace object' has no attribute '" + name + "'");
    case Value::Kind::string:
      return string_method(obj.string, name);
    case Value::Kind::list:
    case Value::Kind::tuple: {
      Value method = list_method(obj, name);
      if (!method.is_undefined()) return method;
      break;
    }
    default:
      break;
  }
  return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  switch (obj.kind) {
    case Value::Kind::dict:
    case Value::Kind::ns:
      if (key.is_string()) {
        if (const Value* v = obj.dict->find(key.string)) return *v;
        if (obj.kind == Value::Kind::dict) {
          Value method = dict_method(obj, key.string);
          if (!method.is_undefined()) return method;
        }
        return Value::undefined("'" +
                                std::string(obj.kind == Value::Kind::dict ? "dict" : "Namespace") +
                                " object' has no attribute '" + key.string + "'");
      }
      return Value::undefined("'dict object' has no attribute " + to_repr(key));
    case Value::Kind::list:
    case Value::Kind::tuple:
    case Value::Kind::string:
      if (key.kind == Value::Kind::integer || key.kind == Value::Kind::boolean) {
        int64_t index = need_int(key, "index");
        if (obj.is_string()) {
          const std::vector<std::string> cps = code_points(obj.string);
          const auto n = static_cast<int64_t>(cps.size());
          if (index < 0) index += n;
          if (index < 0 || index >= n) {
            return Value::undefined("'str object' has no element " + to_repr(key));
          }
          return Value::from_string(cps[static_cast<size_t>(index)]);
        }
        const auto n = static_cast<int64_t>(obj.list->size());
        if (index < 0) index += n;
        if (index < 0 || index >= n) {
          return Value::undefined("'" + type_name(obj) + " object' has no element " + to_repr(key));
        }
        return (*obj.list)[static_cast<size_t>(index)];
      }
      if (key.is_string()) return get_attribute(obj, key.string);
      break;
    default:
      break;
  }
  return Value::undefined("'" + type_name(obj) + " object' has no element " + to_repr(key));
}

Value get_slice(const Value& obj, const Value* start_v, const Value* stop_v, const Value* step_v) {
  if (obj.is_undefined()) fail_undefined(obj);
  std::vector<std::string> cps;
  int64_t length = 0;
  if (obj.is_string()) {
    cps = code_points(obj.string);
    length = static_cast<int64_t>(cps.size());
  } else if (obj.is_sequence()) {
    length = static_cast<int64_t>(obj.list->size());
  } else {
    throw Error("'" + type_name(obj) + "' object is not subscriptable");
  }
  const auto opt = [](const Value* v) -> std::optional<int64_t> {
    if (!v || v->is_none()) return std::nullopt;
    return need_int(*v, "slice index");
  };
  const int64_t step = opt(step_v).value_or(1);
  check(step != 0, "slice step cannot be zero");
  const auto adjust = [&](std::optional<int64_t> v, bool is_start) {
    if (!v) return step < 0 ? (is_start ? length - 1 : -1) : (is_start ? 0 : length);
    int64_t i = *v;
    if (i < 0) {
      i += length;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= length) {
      i = step < 0 ? length - 1 : length;
    }
    return i;
  };
  const int64_t start = adjust(opt(start_v), true);
  const int64_t stop = adjust(opt(stop_v), false);
  std::vector<size_t> picks;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    picks.push_back(static_cast<size_t>(i));
  }
  if (obj.is_string()) {
    std::string out;
    for (size_t i : picks) out += cps[i];
    return Value::from_string(std::move(out));
  }
  List out;
  out.reserve(picks.size());
  for (size_t i : picks) out.push_back((*obj.list)[i]);
  return obj.kind == Value::Kind::tuple ? Value::from_tuple(std::move(out))
                                        : Value::from_list(std::move(out));
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::undefined:
      return {};
    case Value::Kind::list:
    case Value::Kind::tuple:
      return *v.list;
    case Value::Kind::dict: {
      List keys;
      keys.reserve(v.dict->items.size());
      for (const auto& [k, val] : v.dict->items) keys.push_back(Value::from_string(k));
      return keys;
    }
    case Value::Kind::string: {
      List out;
      for (auto& cp : code_points(v.string)) out.push_back(Value::from_string(std::move(cp)));
      return out;
    }
    default:
      throw Error("'" + type_name(v) + "' object is not iterable");
  }
}

bool contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind) {
    case Value::Kind::undefined:
      return false;
    case Value::Kind::string:
      if (needle.is_undefined()) fail_undefined(needle);
      check(needle.is_string(),
            "'in <string>' requires string as left operand, not " + type_name(needle));
      return haystack.string.find(needle.string) != std::string::npos;
    case Value::Kind::list:
    case Value::Kind::tuple:
      for (const Value& v : haystack.items()) {
        if (equals(v, needle)) return true;
      }
      return false;
    case Value::Kind::dict:
      return needle.is_string() && haystack.dict->find(needle.string) != nullptr;
    default:
      throw Error("argument of type '" + type_name(haystack) + "' is not iterable");
  }
}

namespace {

// ----- filter helpers

// Looks up a dotted attribute path ("a.b.0") the way jinja2's attribute filters do (item first).
Value lookup_path(const Value& item, const std::string& path) {
  Value current = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; });
    if (current.is_undefined()) return current;
    current = numeric ? get_item(current, Value::from_int(std::stoll(part)))
                      : get_item(current, Value::from_string(part));
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

// Sort key comparison: strings lowered unless case-sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::from_string(ascii_lower(v.string));
  return v;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::optional<int64_t> parse_python_int(std::string s, int base) {
  s = python_strip(s, "", true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  bool negative = false;
  size_t i = 0;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    i = 1;
  }
  if (i == s.size()) return std::nullopt;
  int64_t value = 0;
  for (; i < s.size(); ++i) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'z') digit = c - 'a' + 10;
    if (digit < 0 || digit >= base) return std::nullopt;
    if (value > (INT64_MAX - digit) / base) return std::nullopt;
    value = value * base + digit;
  }
  return negative ? -value : value;
}

std::optional<double> parse_python_float(const std::string& text) {
  std::string s = ascii_lower(python_strip(text, "", true, true));
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  const bool neg = s[0] == '-';
  const std::string body = (s[0] == '-' || s[0] == '+') ? s.substr(1) : s;
  if (body == "inf" || body == "infinity") return neg ? -HUGE_VAL : HUGE_VAL;
  if (body == "nan") return std::nan("");
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

// Python's round(x, ndigits) for floats (ties to even on the scaled value).
double python_round(double x, int64_t digits) {
  const double scale = std::pow(10.0, static_cast<double>(digits));
  const double scaled = x * scale;
  double r = std::nearbyint(scaled);
  return r / scale;
}

std::string indent_text(const std::string& s, const Value& width, bool first, bool blank) {
  const std::string indention =
      width.is_string()
          ? width.string
          : std::string(static_cast<size_t>(std::max<int64_t>(0, need_int(width, "indent width"))),
                        ' ');
  const std::vector<std::string> lines = splitlines(s + "\n", false);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? std::string() : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t i = 1; i < lines.size(); ++i) {
        if (i > 1) rv += "\n";
        if (!lines[i].empty()) rv += indention;
        rv += lines[i];
      }
    }
  }
  if (first) rv = indention + rv;
  return rv;
}

Value select_items(RenderLimits& limits, const Value& seq, CallArgs& args, bool by_attribute,
                   bool keep_if) {
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    check(!args.positional.empty(), "selectattr/rejectattr need an attribute name");
    attribute = need_string(args.positional[next++], "attribute name");
  }
  std::string test_name;
  if (next < args.positional.size()) test_name = need_string(args.positional[next++], "test name");
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next),
                              args.positional.end());
  test_args.keyword = args.keyword;
  List out;
  for (const Value& item : iterate(seq)) {
    const Value subject = by_attribute ? lookup_path(item, attribute) : item;
    const bool passed =
        test_name.empty() ? truthy(subject) : apply_test(limits, test_name, subject, test_args);
    if (passed == keep_if) out.push_back(item);
  }
  return Value::from_list(std::move(out));
}

Value aggregate(const Value& seq, CallArgs& args, bool want_max) {
  check_args(args, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  const Value* cs = arg(args, 0, "case_sensitive");
  const Value* attr = arg(args, 1, "attribute");
  const bool case_sensitive = cs && truthy(*cs);
  std::optional<Value> best;
  Value best_key;
  for (const Value& item : iterate(seq)) {
    const Value subject =
        attr && !attr->is_none() ? lookup_path(item, need_string(*attr, "attribute")) : item;
    const Value key = sort_key(subject, case_sensitive);
    if (!best || (want_max ? less_than(best_key, key) : less_than(key, best_key))) {
      best = item;
      best_key = key;
    }
  }
  if (!best) return Value::undefined("No aggregated item, sequence was empty.");
  return *best;
}

std::string str_of(const Value& v) {
  return to_str(v);
}

int64_t length_of(const Value& v) {
  switch (v.kind) {
    case Value::Kind::undefined:
      return 0;
    case Value::Kind::string:
      return static_cast<int64_t>(code_point_count(v.string));
    case Value::Kind::list:
    case Value::Kind::tuple:
      return static_cast<int64_t>(v.list->size());
    case Value::Kind::dict:
      return static_cast<int64_t>(v.dict->items.size());
    default:
      throw Error("object of type '" + type_name(v) + "' has no len()");
  }
}

Value add_values(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Value::Kind::floating && b.kind != Value::Kind::floating) {
      int64_t r = 0;
      check(!__builtin_add_overflow(need_int(a, "sum"), need_int(b, "sum"), &r),
            "integer overflow");
      return Value::from_int(r);
    }
    return Value::from_float(need_number(a, "sum") + need_number(b, "sum"));
  }
  throw Error("unsupported operand type(s) for +: '" + type_name(a) + "' and '" + type_name(b) +
              "'");
}

}  // namespace

bool has_filter(const std::string& name) {
  static const char* const kNames[] = {
      "abs",    "attr",       "capitalize", "count",    "d",       "default", "dictsort",
      "e",      "escape",     "first",      "float",    "indent",  "int",     "items",
      "join",   "last",       "length",     "list",     "lower",   "map",     "max",
      "min",    "reject",     "rejectattr", "replace",  "reverse", "round",   "safe",
      "select", "selectattr", "sort",       "string",   "sum",     "title",   "tojson",
      "trim",   "unique",     "upper",      "wordcount"};
  for (const char* n : kNames) {
    if (name == n) return true;
  }
  return false;
}

Value apply_filter(RenderLimits& limits, const std::string& name, const Value& v, CallArgs& a) {
  if (name == "trim") {
    check_args(a, name, {"chars"});
    const Value* chars = arg(a, 0, "chars");
    const std::string set = chars && !chars->is_none() ? need_string(*chars, "trim chars") : "";
    if (chars && !chars->is_none() && set.empty()) return Value::from_string(str_of(v));
    return Value::from_string(python_strip(str_of(v), set, true, true));
  }
  if (name == "length" || name == "count") {
    check_args(a, name, {});
    return Value::from_int(length_of(v));
  }
  if (name == "tojson") {
    check_args(a, name, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonFormat format;
    const Value* ensure_ascii = arg(a, 0, "ensure_ascii");
    format.ensure_ascii = ensure_ascii && truthy(*ensure_ascii);
    if (const Value* indent = arg(a, 1, "indent"); indent && !indent->is_none()) {
      format.indent =
          static_cast<int>(std::clamp<int64_t>(need_int(*indent, "tojson indent"), 0, 64));
    }
    if (const Value* sep = arg(a, 2, "separators"); sep && !sep->is_none()) {
      check(sep->is_sequence() && sep->items().size() == 2,
            "tojson separators must be a pair (item separator, key separator)");
      format.separators_given = true;
      format.item_separator = need_string(sep->items()[0], "separator");
      format.key_separator = need_string(sep->items()[1], "separator");
    }
    if (const Value* sort = arg(a, 3, "sort_keys")) format.sort_keys = truthy(*sort);
    if (v.is_undefined()) {
      throw Error("Object of type Undefined is not JSON serializable" +
                  (v.string.empty() ? std::string() : " (" + v.string + ")"));
    }
    std::string out = to_json(v, format);
    limits.check_size(out.size());
    return Value::from_string(std::move(out));
  }
  if (name == "string" || name == "safe") {
    check_args(a, name, {});
    return Value::from_string(str_of(v));
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    check_args(a, name, {});
    const std::string s = str_of(v);
    if (name == "upper") return Value::from_string(ascii_upper(s));
    if (name == "lower") return Value::from_string(ascii_lower(s));
    if (name == "capitalize") return Value::from_string(capitalize(s));
    // jinja2's title: each chunk after a run of [-\s({[<] gets its first letter raised and the
    // rest lowered.
    std::string out;
    bool at_start = true;
    size_t pos = 0;
    while (pos < s.size()) {
      const size_t begin = pos;
      const uint32_t cp = decode_utf8(s, pos);
      const bool separator =
          is_python_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
      std::string piece = s.substr(begin, pos - begin);
      if (separator) {
        at_start = true;
      } else {
        piece = at_start ? ascii_upper(piece) : ascii_lower(piece);
        at_start = false;
      }
      out += piece;
    }
    return Value::from_string(std::move(out));
  }
  if (name == "default" || name == "d") {
    check_args(a, name, {"default_value", "boolean"});
    const Value* fallback = arg(a, 0, "default_value");
    const Value* boolean = arg(a, 1, "boolean");
    const bool use_fallback = v.is_undefined() || (boolean && truthy(*boolean) && !truthy(v));
    if (!use_fallback) return v;
    return fallback ? *fallback : Value::from_string("");
  }
  if (name == "items") {
    check_args(a, name, {});
    if (v.is_undefined()) return Value::from_list({});
    check(v.is_mapping(), "can only get item pairs from a mapping, not '" + type_name(v) + "'");
    return items_of(*v.dict);
  }
  if (name == "list") {
    check_args(a, name, {});
    return Value::from_list(iterate(v));
  }
  if (name == "join") {
    check_args(a, name, {"d", "attribute"});
    const Value* sep = arg(a, 0, "d");
    const Value* attr = arg(a, 1, "attribute");
    const std::string separator = sep ? str_of(*sep) : "";
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      const size_t before = out.size();
      if (!first) out += separator;
      first = false;
      out += str_of(attr && !attr->is_none() ? lookup_path(item, str_of(*attr)) : item);
      limits.check_append(out.size(), out.size() - before);
    }
    return Value::from_string(std::move(out));
  }
  if (name == "first" || name == "last") {
    check_args(a, name, {});
    const List items = iterate(v);
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    check_args(a, name, {});
    if (v.is_string()) {
      std::vector<std::string> cps = code_points(v.string);
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return Value::from_string(std::move(out));
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::from_list(std::move(items));
  }
  if (name == "replace") {
    check_args(a, name, {"old", "new", "count"});
    const Value* o = arg(a, 0, "old");
    const Value* n = arg(a, 1, "new");
    check(o && n, "replace needs the old and new strings");
    const Value* count = arg(a, 2, "count");
    return Value::from_string(
        python_replace(str_of(v), str_of(*o), str_of(*n),
                       count && !count->is_none() ? need_int(*count, "count") : -1, limits));
  }
  if (name == "escape" || name == "e") {
    check_args(a, name, {});
    return Value::from_string(html_escape(str_of(v)));
  }
  if (name == "int") {
    check_args(a, name, {"default", "base"});
    const Value* fallback = arg(a, 0, "default");
    const Value* base_v = arg(a, 1, "base");
    const Value def = fallback ? *fallback : Value::from_int(0);
    const int base = base_v ? static_cast<int>(need_int(*base_v, "base")) : 10;
    if (v.kind == Value::Kind::integer) return v;
    if (v.kind == Value::Kind::boolean) return Value::from_int(v.boolean ? 1 : 0);
    if (v.kind == Value::Kind::floating) {
      if (!std::isfinite(v.floating) || std::fabs(v.floating) >= 9.2e18) return def;
      return Value::from_int(static_cast<int64_t>(v.floating));
    }
    if (v.is_string()) {
      if (auto i = parse_python_int(v.string, base)) return Value::from_int(*i);
      if (auto d = parse_python_float(v.string); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) {
        return Value::from_int(static_cast<int64_t>(*d));
      }
    }
    return def;
  }
  if (name == "float") {
    check_args(a, name, {"default"});
    const Value* fallback = arg(a, 0, "default");
    const Value def = fallback ? *fallback : Value::from_float(0.0);
    if (v.is_number()) return Value::from_float(need_number(v, "float"));
    if (v.is_string()) {
      if (auto d = parse_python_float(v.string)) return Value::from_float(*d);
    }
    return def;
  }
  if (name == "abs") {
    check_args(a, name, {});
    if (v.kind == Value::Kind::floating) return Value::from_float(std::fabs(v.floating));
    const int64_t i = need_int(v, "abs() argument");
    check(i != INT64_MIN, "integer overflow");
    return Value::from_int(i < 0 ? -i : i);
  }
  if (name == "round") {
    check_args(a, name, {"precision", "method"});
    const Value* precision_v = arg(a, 0, "precision");
    const Value* method_v = arg(a, 1, "method");
    const int64_t precision = precision_v ? need_int(*precision_v, "precision") : 0;
    const std::string method = method_v ? need_string(*method_v, "method") : "common";
    const double x = need_number(v, "round() argument");
    const double scale = std::pow(10.0, static_cast<double>(precision));
    if (method == "common") {
      if (v.kind != Value::Kind::floating && precision >= 0)
        return Value::from_int(need_int(v, "round"));
      return Value::from_float(python_round(x, precision));
    }
    check(method == "ceil" || method == "floor", "method must be common, ceil or floor");
    return Value::from_float((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) /
                             scale);
  }
  if (name == "indent") {
    check_args(a, name, {"width", "first", "blank"});
    const Value* width = arg(a, 0, "width");
    const Value* first = arg(a, 1, "first");
    const Value* blank = arg(a, 2, "blank");
    return Value::from_string(indent_text(str_of(v), width ? *width : Value::from_int(4),
                                          first && truthy(*first), blank && truthy(*blank)));
  }
  if (name == "wordcount") {
    check_args(a, name, {});
    const std::string s = str_of(v);
    int64_t words = 0;
    bool in_word = false;
    for (char c : s) {
      const bool word_char = std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                             static_cast<unsigned char>(c) >= 0x80;
      if (word_char && !in_word) ++words;
      in_word = word_char;
    }
    return Value::from_int(words);
  }
  if (name == "select" || name == "reject")
    return select_items(limits, v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") {
    return select_items(limits, v, a, true, name == "selectattr");
  }
  if (name == "map") {
    List out;
    const Value* attribute = nullptr;
    const Value* fallback = nullptr;
    for (const auto& [k, val] : a.keyword) {
      if (k == "attribute") attribute = &val;
      if (k == "default") fallback = &val;
    }
    if (attribute) {
      for (const Value& item : iterate(v)) {
        Value got = lookup_path(item, str_of(*attribute));
        out.push_back(got.is_undefined() && fallback ? *fallback : got);
      }
      return Value::from_list(std::move(out));
    }
    check(!a.positional.empty(), "map needs a filter name or attribute=...");
    const std::string filter = need_string(a.positional[0], "filter name");
    check(has_filter(filter), "no filter named '" + filter + "'");
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const Value& item : iterate(v)) {
      CallArgs copy = rest;
      out.push_back(apply_filter(limits, filter, item, copy));
    }
    return Value::from_list(std::move(out));
  }
  if (name == "sort") {
    check_args(a, name, {"reverse", "case_sensitive", "attribute"});
    const Value* rev = arg(a, 0, "reverse");
    const Value* cs = arg(a, 1, "case_sensitive");
    const Value* attr = arg(a, 2, "attribute");
    const bool case_sensitive = cs && truthy(*cs);
    List items = iterate(v);
    std::vector<std::pair<Value, size_t>> keyed;
    for (size_t i = 0; i < items.size(); ++i) {
      const Value subject =
          attr && !attr->is_none() ? lookup_path(items[i], str_of(*attr)) : items[i];
      keyed.emplace_back(sort_key(subject, case_sensitive), i);
    }
    const bool reverse = rev && truthy(*rev);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
      return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
    });
    List out;
    for (const auto& [k, i] : keyed) out.push_back(items[i]);
    return Value::from_list(std::move(out));
  }
  if (name == "dictsort") {
    check_args(a, name, {"case_sensitive", "by", "reverse"});
    check(v.is_mapping(), "dictsort needs a mapping, not '" + type_name(v) + "'");
    const Value* cs = arg(a, 0, "case_sensitive");
    const Value* by = arg(a, 1, "by");
    const Value* rev = arg(a, 2, "reverse");
    const bool case_sensitive = cs && truthy(*cs);
    const bool by_value = by && str_of(*by) == "value";
    check(!by || by_value || str_of(*by) == "key", "dictsort: by must be 'key' or 'value'");
    List pairs = items_of(*v.dict).items();
    const bool reverse = rev && truthy(*rev);
    std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
      const Value kx = sort_key(x.items()[by_value ? 1 : 0], case_sensitive);
      const Value ky = sort_key(y.items()[by_value ? 1 : 0], case_sensitive);
      return reverse ? less_than(ky, kx) : less_than(kx, ky);
    });
    return Value::from_list(std::move(pairs));
  }
  if (name == "unique") {
    check_args(a, name, {"case_sensitive", "attribute"});
    const Value* cs = arg(a, 0, "case_sensitive");
    const Value* attr = arg(a, 1, "attribute");
    const bool case_sensitive = cs && truthy(*cs);
    List out;
    List seen;
    for (const Value& item : iterate(v)) {
      const Value key = sort_key(attr && !attr->is_none() ? lookup_path(item, str_of(*attr)) : item,
                                 case_sensitive);
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::from_list(std::move(out));
  }
  if (name == "max" || name == "min") return aggregate(v, a, name == "max");
  if (name == "sum") {
    check_args(a, name, {"attribute", "start"});
    const Value* attr = arg(a, 0, "attribute");
    const Value* start = arg(a, 1, "start");
    Value total = start ? *start : Value::from_int(0);
    for (const Value& item : iterate(v)) {
      total = add_values(total, attr && !attr->is_none() ? lookup_path(item, str_of(*attr)) : item);
    }
    return total;
  }
  if (name == "attr") {
    check_args(a, name, {"name"});
    const Value* attr = arg(a, 0, "name");
    check(attr != nullptr, "attr needs a name");
    const std::string& key = need_string(*attr, "attribute name");
    if (v.kind == Value::Kind::dict) {
      Value method = get_attribute(v, key);
      return v.dict->find(key) && !method.is_callable() ? Value::undefined() : method;
    }
    return get_attribute(v, key);
  }
  throw Error("no filter named '" + name + "'");
}

bool has_test(const std::string& name) {
  static const char* const kNames[] = {
      "boolean",     "callable", "defined", "divisibleby", "eq",   "equalto",   "==",     "escaped",
      "even",        "false",    "filter",  "float",       "ge",   ">=",        "gt",     ">",
      "greaterthan", "in",       "integer", "iterable",    "le",   "<=",        "lower",  "lt",
      "<",           "lessthan", "mapping", "ne",          "!=",   "none",      "number", "odd",
      "sameas",      "sequence", "string",  "test",        "true", "undefined", "upper"};
  for (const char* n : kNames) {
    if (name == n) return true;
  }
  return false;
}

bool apply_test(RenderLimits&, const std::string& name, const Value& v, CallArgs& a) {
  const auto one_arg = [&]() -> const Value& {
    check(a.positional.size() == 1 && a.keyword.empty(), "test '" + name + "' takes one argument");
    return a.positional[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_mapping();
  if (name == "boolean") return v.kind == Value::Kind::boolean;
  if (name == "true") return v.kind == Value::Kind::boolean && v.boolean;
  if (name == "false") return v.kind == Value::Kind::boolean && !v.boolean;
  if (name == "integer") return v.kind == Value::Kind::integer;
  if (name == "float") return v.kind == Value::Kind::floating;
  if (name == "number") return v.is_number();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "iterable") {
    return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_mapping();
  }
  if (name == "sequence") {
    return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_mapping();
  }
  if (name == "odd" || name == "even") {
    const int64_t i = need_int(v, "test '" + name + "' operand");
    return ((i % 2) != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const int64_t d = need_int(one_arg(), "divisibleby argument");
    check(d != 0, "integer division or modulo by zero");
    return need_int(v, "divisibleby operand") % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, one_arg());
  if (name == "ne" || name == "!=") return !equals(v, one_arg());
  if (name == "lt" || name == "<" || name == "lessthan") return less_than(v, one_arg());
  if (name == "gt" || name == ">" || name == "greaterthan") return less_than(one_arg(), v);
  if (name == "le" || name == "<=") return !less_than(one_arg(), v);
  if (name == "ge" || name == ">=") return !less_than(v, one_arg());
  if (name == "in") return contains(one_arg(), v);
  if (name == "sameas") {
    const Value& other = one_arg();
    if (v.kind != other.kind) return false;
    switch (v.kind) {
      case Value::Kind::none:
      case Value::Kind::undefined:
        return true;
      case Value::Kind::boolean:
        return v.boolean == other.boolean;
      case Value::Kind::integer:
        return v.integer == other.integer;
      case Value::Kind::list:
      case Value::Kind::tuple:
        return v.list == other.list;
      case Value::Kind::dict:
      case Value::Kind::ns:
        return v.dict == other.dict;
      case Value::Kind::callable:
        return v.callable == other.callable;
      default:
        return false;
    }
  }
  if (name == "lower" || name == "upper") {
    const std::string s = to_str(v);
    const bool has_lower =
        std::any_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
    const bool has_upper =
        std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    return name == "lower" ? has_lower && !has_upper : has_upper && !has_lower;
  }
  if (name == "filter") return v.is_string() && has_filter(v.string);
  if (name == "test") return v.is_string() && has_test(v.string);
  throw Error("no test named '" + name + "'");
}

void add_globals(Dict& globals, RenderLimits& limits) {
  const auto add = [&](const std::string& name, std::function<Value(CallArgs&)> fn) {
    if (!globals.find(name)) globals.items.emplace_back(name, bound(name, std::move(fn)));
  };
  add("raise_exception", [](CallArgs& a) -> Value {
    check(a.positional.size() == 1 && a.keyword.empty(), "raise_exception() takes one message");
    throw Error("raise_exception: " + to_str(a.positional[0]));
  });
  add("strftime_now", [&limits](CallArgs& a) {
    check(a.positional.size() == 1 && a.keyword.empty(), "strftime_now() takes one format");
    const std::string& format = need_string(a.positional[0], "strftime_now() format");
    const std::time_t now = limits.options().now ? *limits.options().now : std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    if (format.empty()) return Value::from_string("");
    std::vector<char> buf(256 + format.size() * 16);
    const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
    check(n > 0, "strftime_now(): the format gives an empty or too long result");
    return Value::from_string(std::string(buf.data(), n));
  });
  add("range", [](CallArgs& a) {
    check(!a.positional.empty() && a.positional.size() <= 3 && a.keyword.empty(),
          "range() takes 1 to 3 integers");
    int64_t start = 0;
    int64_t stop = 0;
    int64_t step = 1;
    if (a.positional.size() == 1) {
      stop = need_int(a.positional[0], "range() argument");
    } else {
      start = need_int(a.positional[0], "range() argument");
      stop = need_int(a.positional[1], "range() argument");
      if (a.positional.size() == 3) step = need_int(a.positional[2], "range() step");
    }
    check(step != 0, "range() arg 3 must not be zero");
    const double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) /
                                   static_cast<double>(step));
    check(count <= 100000, "range too big: the sandbox allows at most 100000 items");
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
      out.push_back(Value::from_int(i));
    return Value::from_list(std::move(out));
  });
  add("dict", [](CallArgs& a) {
    Dict d;
    check(a.positional.size() <= 1, "dict() takes at most one positional argument");
    if (!a.positional.empty()) {
      const Value& src = a.positional[0];
      if (src.is_mapping()) {
        d = *src.dict;
      } else {
        for (const Value& pair : iterate(src)) {
          check(pair.is_sequence() && pair.items().size() == 2,
                "dict() sequence items must be (key, value) pairs");
          d.set(need_string(pair.items()[0], "dict key"), pair.items()[1]);
        }
      }
    }
    for (auto& [k, v] : a.keyword) d.set(k, v);
    return Value::from_dict(std::move(d));
  });
  add("namespace", [](CallArgs& a) {
    Dict d;
    check(a.positional.size() <= 1, "namespace() takes at most one positional argument");
    if (!a.positional.empty()) {
      check(a.positional[0].is_mapping(), "namespace() positional argument must be a mapping");
      d = *a.positional[0].dict;
    }
    for (auto& [k, v] : a.keyword) d.set(k, v);
    return Value::make_namespace(std::move(d));
  });
}

}  // namespace bx::tmpl
