#include "template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "template/unicode.h"

namespace bx::tmpl {

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::set(const std::string& key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

Value Value::undefined(std::string why) {
  Value v;
  v.string = std::move(why);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::none;
  return v;
}
Value Value::from_bool(bool b) {
  Value v;
  v.kind = Kind::boolean;
  v.boolean = b;
  return v;
}
Value Value::from_int(int64_t i) {
  Value v;
  v.kind = Kind::integer;
  v.integer = i;
  return v;
}
Value Value::from_float(double f) {
  Value v;
  v.kind = Kind::floating;
  v.floating = f;
  return v;
}
Value Value::from_string(std::string s) {
  Value v;
  v.kind = Kind::string;
  v.string = std::move(s);
  return v;
}
namespace {

// Sets a container's depth and holds_reference from one element.
void account(Value& container, const Value& element) {
  const int depth = element.kind == Value::Kind::ns ? 1 : element.depth + 1;
  check(depth <= kMaxValueDepth,
        "values nested more than " + std::to_string(kMaxValueDepth) + " levels deep");
  container.depth = std::max<uint16_t>(container.depth, static_cast<uint16_t>(depth));
  container.holds_reference = container.holds_reference || element.is_reference();
}

}  // namespace

Value Value::from_list(List items) {
  Value v;
  v.kind = Kind::list;
  v.depth = 1;
  for (const Value& item : items) account(v, item);
  v.list = std::make_shared<const List>(std::move(items));
  return v;
}
Value Value::from_tuple(List items) {
  Value v = from_list(std::move(items));
  v.kind = Kind::tuple;
  return v;
}
Value Value::from_dict(Dict d) {
  Value v;
  v.kind = Kind::dict;
  v.depth = 1;
  for (const auto& [key, item] : d.items) account(v, item);
  v.dict = std::make_shared<Dict>(std::move(d));
  return v;
}
Value Value::make_namespace(Dict d, bool allow_references) {
  Value v;
  v.kind = Kind::ns;
  for (const auto& [key, item] : d.items) {
    check(allow_references || !item.is_reference(),
          "namespace attribute '" + key +
              "' would hold a namespace or a function; bitexact "
              "keeps namespaces to plain values");
  }
  v.dict = std::make_shared<Dict>(std::move(d));
  return v;
}
Value Value::from_callable(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.kind = Kind::callable;
  v.callable = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::undefined:
      return "Undefined";
    case Value::Kind::none:
      return "NoneType";
    case Value::Kind::boolean:
      return "bool";
    case Value::Kind::integer:
      return "int";
    case Value::Kind::floating:
      return "float";
    case Value::Kind::string:
      return "str";
    case Value::Kind::list:
      return "list";
    case Value::Kind::tuple:
      return "tuple";
    case Value::Kind::dict:
      return "dict";
    case Value::Kind::ns:
      return "Namespace";
    case Value::Kind::callable:
      return "function";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::undefined:
    case Value::Kind::none:
      return false;
    case Value::Kind::boolean:
      return v.boolean;
    case Value::Kind::integer:
      return v.integer != 0;
    case Value::Kind::floating:
      return v.floating != 0;
    case Value::Kind::string:
      return !v.string.empty();
    case Value::Kind::list:
    case Value::Kind::tuple:
      return !v.list->empty();
    case Value::Kind::dict:
      return !v.dict->items.empty();
    case Value::Kind::ns:
    case Value::Kind::callable:
      return true;
  }
  return false;
}

namespace {

bool is_integral(const Value& v) {
  return v.kind == Value::Kind::integer || v.kind == Value::Kind::boolean;
}
int64_t integral(const Value& v) {
  return v.kind == Value::Kind::boolean ? (v.boolean ? 1 : 0) : v.integer;
}
double as_double(const Value& v) {
  return v.kind == Value::Kind::floating ? v.floating : static_cast<double>(integral(v));
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return integral(a) == integral(b);
    return as_double(a) == as_double(b);
  }
  if (a.kind != b.kind) {
    // A list never equals a tuple in Python; every other mixed pair is unequal too.
    return false;
  }
  switch (a.kind) {
    case Value::Kind::undefined:
    case Value::Kind::none:
      return true;
    case Value::Kind::string:
      return a.string == b.string;
    case Value::Kind::list:
    case Value::Kind::tuple: {
      if (a.list->size() != b.list->size()) return false;
      for (size_t i = 0; i < a.list->size(); ++i) {
        if (!equals((*a.list)[i], (*b.list)[i])) return false;
      }
      return true;
    }
    case Value::Kind::dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* other = b.dict->find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::ns:
      return a.dict == b.dict;
    case Value::Kind::callable:
      return a.callable == b.callable;
    default:
      return false;
  }
}

bool less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return integral(a) < integral(b);
    return as_double(a) < as_double(b);
  }
  if (a.is_string() && b.is_string()) return a.string < b.string;
  if (a.kind == b.kind && a.is_sequence()) {
    const List& x = *a.list;
    const List& y = *b.list;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  throw Error("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) +
              "'");
}

std::string format_python_float(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  // Shortest round-trip digits in scientific form, e.g. "1.2345e+02", then laid out the way
  // Python's repr does: positional when -4 <= exponent < 16, else d.ddde+XX.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  const size_t e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  const int exponent = std::stoi(sci.substr(e_pos + 1));
  bool negative = false;
  if (!mantissa.empty() && mantissa[0] == '-') {
    negative = true;
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent >= 0) {
      const size_t int_len = static_cast<size_t>(exponent) + 1;
      if (digits.size() <= int_len) {
        out += digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + exp_buf;
}

namespace {

// Python's str.isprintable() for one code point, approximated by the ranges that chat text can
// meet: control characters, the C1 block, non-breaking and typographic spaces, line and paragraph
// separators, format characters (soft hyphen, zero-width and bidi marks, BOM), private use.
bool python_printable(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) return false;
  if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f)) {
    return false;
  }
  if ((cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff) return false;
  if ((cp >= 0xe000 && cp <= 0xf8ff) || cp >= 0xf0000) return false;
  if (cp >= 0xfff9 && cp <= 0xfffb) return false;
  return true;
}

std::string repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const uint32_t cp = decode_utf8(s, pos);
    char buf[16];
    if (cp == '\\') {
      out += "\\\\";
    } else if (cp == static_cast<uint32_t>(quote)) {
      out += '\\';
      out += quote;
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (python_printable(cp)) {
      out.append(s, start, pos - start);
    } else if (cp < 0x100) {
      std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      out += buf;
    } else if (cp < 0x10000) {
      std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      out += buf;
    } else {
      std::snprintf(buf, sizeof buf, "\\U%08x", cp);
      out += buf;
    }
  }
  return out + quote;
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Value::Kind::undefined:
      return "";
    case Value::Kind::string:
      return v.string;
    case Value::Kind::ns:
      return "<Namespace>";
    case Value::Kind::callable:
      return "<function " + v.callable->name + ">";
    default:
      return to_repr(v);
  }
}

std::string to_repr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::undefined:
      return "Undefined";
    case Value::Kind::none:
      return "None";
    case Value::Kind::boolean:
      return v.boolean ? "True" : "False";
    case Value::Kind::integer:
      return std::to_string(v.integer);
    case Value::Kind::floating:
      return format_python_float(v.floating);
    case Value::Kind::string:
      return repr_string(v.string);
    case Value::Kind::list:
    case Value::Kind::tuple: {
      const bool tuple = v.kind == Value::Kind::tuple;
      std::string out = tuple ? "(" : "[";
      for (size_t i = 0; i < v.list->size(); ++i) {
        if (i) out += ", ";
        out += to_repr((*v.list)[i]);
      }
      if (tuple && v.list->size() == 1) out += ",";
      return out + (tuple ? ")" : "]");
    }
    case Value::Kind::dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, val] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(k) + ": " + to_repr(val);
      }
      return out + "}";
    }
    case Value::Kind::ns:
    case Value::Kind::callable:
      return to_str(v);
  }
  return "";
}

namespace {

// json.dumps string escaping: quote, backslash and control characters; with ensure_ascii also
// every non-ASCII character, as \uXXXX (UTF-16 surrogate pairs above U+FFFF).
void json_string(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const uint32_t cp = decode_utf8(s, pos);
    char buf[16];
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (cp < 0x20) {
          std::snprintf(buf, sizeof buf, "\\u%04x", cp);
          out += buf;
        } else if (ensure_ascii && cp >= 0x80) {
          if (cp >= 0x10000) {
            const uint32_t v = cp - 0x10000;
            std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (v >> 10),
                          0xdc00 + (v & 0x3ff));
          } else {
            std::snprintf(buf, sizeof buf, "\\u%04x", cp);
          }
          out += buf;
        } else {
          out.append(s, start, pos - start);
        }
    }
  }
  out += '"';
}

void json_value(const Value& v, const JsonFormat& f, int depth, std::string& out) {
  check(depth < 512, "tojson: value nested more than 512 levels deep");
  const bool pretty = f.indent >= 0;
  const std::string item_sep =
      f.separators_given ? f.item_separator : (pretty ? std::string(",") : std::string(", "));
  const std::string key_sep = f.separators_given ? f.key_separator : std::string(": ");
  const auto newline = [&](int level) {
    out += '\n';
    out.append(static_cast<size_t>(f.indent) * static_cast<size_t>(level), ' ');
  };
  switch (v.kind) {
    case Value::Kind::none:
      out += "null";
      return;
    case Value::Kind::boolean:
      out += v.boolean ? "true" : "false";
      return;
    case Value::Kind::integer:
      out += std::to_string(v.integer);
      return;
    case Value::Kind::floating:
      if (std::isnan(v.floating)) {
        out += "NaN";
      } else if (std::isinf(v.floating)) {
        out += v.floating < 0 ? "-Infinity" : "Infinity";
      } else {
        out += format_python_float(v.floating);
      }
      return;
    case Value::Kind::string:
      json_string(v.string, f.ensure_ascii, out);
      return;
    case Value::Kind::list:
    case Value::Kind::tuple: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < v.list->size(); ++i) {
        if (i) out += item_sep;
        if (pretty) newline(depth + 1);
        json_value((*v.list)[i], f, depth + 1, out);
      }
      if (pretty) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& item : v.dict->items) entries.push_back(&item);
      if (f.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += item_sep;
        if (pretty) newline(depth + 1);
        json_string(entries[i]->first, f.ensure_ascii, out);
        out += key_sep;
        json_value(entries[i]->second, f, depth + 1, out);
      }
      if (pretty) newline(depth);
      out += '}';
      return;
    }
    default:
      throw Error("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonFormat& format) {
  std::string out;
  json_value(v, format, 0, out);
  return out;
}

namespace {

Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  check(depth < 256, "JSON value nested more than 256 levels deep");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::from_bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::from_int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      check(u <= static_cast<uint64_t>(INT64_MAX),
            "JSON integer " + std::to_string(u) + " is too large; expected at most 2^63-1");
      return Value::from_int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::from_float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::from_string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return Value::from_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      for (const auto& [k, e] : j.items()) d.items.emplace_back(k, from_json_at(e, depth + 1));
      return Value::from_dict(std::move(d));
    }
    default:
      throw Error("JSON value of an unsupported type (binary or discarded)");
  }
}

}  // namespace

Value from_json(const nlohmann::ordered_json& j) {
  return from_json_at(j, 0);
}

}  // namespace bx::tmpl
