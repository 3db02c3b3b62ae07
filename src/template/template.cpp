#include "template/template.h"

#include <cmath>

#include "core/error.h"
#include "template/ast.h"
#include "template/builtins.h"
#include "template/lexer.h"
#include "template/parser.h"

namespace bx::tmpl {

struct Template::Parsed {
  Body body;
};

Template::Template(std::string_view source) {
  auto parsed = std::make_shared<Parsed>();
  const std::string normalized = normalize_source(source);
  parsed->body = parse(tokenize(normalized));
  parsed_ = std::move(parsed);
}

namespace {

struct Frame {
  Dict vars;
  std::shared_ptr<Frame> parent;
};
using FramePtr = std::shared_ptr<Frame>;

bool is_located(const Error& e) {
  return std::string_view(e.what()).substr(0, 9) == "template:";
}

int64_t as_int(const Value& v) {
  return v.kind == Value::Kind::boolean ? (v.boolean ? 1 : 0) : v.integer;
}
bool is_int_like(const Value& v) {
  return v.kind == Value::Kind::integer || v.kind == Value::Kind::boolean;
}
double as_float(const Value& v) {
  return v.kind == Value::Kind::floating ? v.floating : static_cast<double>(as_int(v));
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  throw Error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
              type_name(b) + "'");
}

class Renderer {
 public:
  Renderer(const Dict& context, const RenderOptions& options)
      : options_(options), limits_(options), root_(std::make_shared<Frame>()) {
    root_->vars = context;
    add_globals(root_->vars, limits_);
  }

  std::string run(const Body& body) {
    std::string out;
    out_ = &out;
    exec(body, root_);
    return out;
  }

 private:
  enum class Flow { normal, break_loop, continue_loop };

  struct DepthGuard {
    explicit DepthGuard(Renderer& r) : renderer(r) {
      check(++renderer.depth_ <= renderer.options_.max_depth,
            "template recursion deeper than " + std::to_string(renderer.options_.max_depth) +
                " levels (macro calls, nesting); stopped");
    }
    ~DepthGuard() { --renderer.depth_; }
    Renderer& renderer;
  };

  void emit(const std::string& text) {
    limits_.check_append(out_->size() + text.size(), text.size());
    out_->append(text);
  }

  static void assign(Frame& frame, const std::string& name, Value v) {
    frame.vars.set(name, std::move(v));
  }

  // Unpacks `value` into the targets (one target takes it whole).
  static void assign_targets(Frame& frame, const std::vector<std::string>& targets,
                             const Value& value) {
    if (targets.size() == 1) {
      assign(frame, targets[0], value);
      return;
    }
    const List items = iterate(value);
    check(items.size() == targets.size(),
          (items.size() < targets.size() ? "not enough" : "too many") +
              std::string(" values to unpack (expected ") + std::to_string(targets.size()) +
              ", got " + std::to_string(items.size()) + ")");
    for (size_t i = 0; i < targets.size(); ++i) assign(frame, targets[i], items[i]);
  }

  static Value lookup(const FramePtr& frame, const std::string& name) {
    for (const Frame* f = frame.get(); f; f = f->parent.get()) {
      if (const Value* v = f->vars.find(name)) return *v;
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  // ----- statements

  Flow exec(const Body& body, const FramePtr& frame) {
    for (const StmtPtr& s : body) {
      const Flow flow = exec_located(*s, frame);
      if (flow != Flow::normal) return flow;
    }
    return Flow::normal;
  }

  Flow exec_located(const Stmt& s, const FramePtr& frame) {
    try {
      return exec_stmt(s, frame);
    } catch (const Error& e) {
      if (is_located(e)) throw;
      throw Error(located(s.line, s.column, e.what()));
    }
  }

  std::string render_body(const Body& body, const FramePtr& frame) {
    std::string text;
    std::string* saved = out_;
    out_ = &text;
    try {
      exec(body, frame);
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    return text;
  }

  Flow exec_stmt(const Stmt& s, const FramePtr& frame) {
    DepthGuard guard(*this);
    switch (s.kind) {
      case Stmt::Kind::text:
        emit(s.text);
        return Flow::normal;
      case Stmt::Kind::output:
        emit(to_str(eval(*s.expr, frame)));
        return Flow::normal;
      case Stmt::Kind::if_chain:
        for (const auto& [condition, body] : s.branches) {
          if (truthy(eval(*condition, frame))) return exec(body, frame);
        }
        return exec(s.else_body, frame);
      case Stmt::Kind::for_loop:
        exec_for(s, frame);
        return Flow::normal;
      case Stmt::Kind::set: {
        Value value = eval(*s.expr, frame);
        if (!s.attribute.empty()) {
          const Value target = lookup(frame, s.targets[0]);
          check(target.kind == Value::Kind::ns, "cannot assign attribute '" + s.attribute +
                                                    "' on '" + s.targets[0] + "': it is a " +
                                                    type_name(target) + ", not a namespace");
          check(!value.is_reference(),
                "cannot store a namespace or a function in namespace "
                "attribute '" +
                    s.attribute +
                    "'; bitexact keeps "
                    "namespaces to plain values");
          target.dict->set(s.attribute, std::move(value));
        } else {
          assign_targets(*frame, s.targets, value);
        }
        return Flow::normal;
      }
      case Stmt::Kind::set_block: {
        auto inner = std::make_shared<Frame>();
        inner->parent = frame;
        Value value = Value::from_string(render_body(s.body, inner));
        if (s.filter) value = eval_filter(*s.filter, frame, &value);
        assign(*frame, s.targets[0], std::move(value));
        return Flow::normal;
      }
      case Stmt::Kind::filter_block: {
        auto inner = std::make_shared<Frame>();
        inner->parent = frame;
        const Value value = Value::from_string(render_body(s.body, inner));
        emit(to_str(eval_filter(*s.filter, frame, &value)));
        return Flow::normal;
      }
      case Stmt::Kind::macro: {
        const Stmt* macro = &s;
        // The macro lives in the frame it captures: a weak reference, or the two would keep each
        // other alive after the render. The frame outlives every use of the macro (a callable
        // can only be reached from that frame or its children; namespaces refuse them).
        std::weak_ptr<Frame> defining = frame;
        assign(*frame, s.name,
               Value::from_callable("macro " + s.name, [this, macro, defining](CallArgs& args) {
                 const FramePtr scope = defining.lock();
                 check(scope != nullptr,
                       "macro '" + macro->name + "' called after its scope ended");
                 return call_macro(*macro, scope, args);
               }));
        return Flow::normal;
      }
      case Stmt::Kind::break_loop:
        return Flow::break_loop;
      case Stmt::Kind::continue_loop:
        return Flow::continue_loop;
      case Stmt::Kind::scope_body:
        return exec(s.body, frame);
    }
    return Flow::normal;
  }

  void exec_for(const Stmt& s, const FramePtr& frame) {
    const Value iterable = eval(*s.expr, frame);
    List items = iterate(iterable);
    if (s.filter) {
      List kept;
      for (const Value& item : items) {
        limits_.step();
        auto probe = std::make_shared<Frame>();
        probe->parent = frame;
        assign_targets(*probe, s.targets, item);
        if (truthy(eval(*s.filter, probe))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      auto inner = std::make_shared<Frame>();
      inner->parent = frame;
      exec(s.else_body, inner);
      return;
    }
    const auto length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      limits_.step();
      auto inner = std::make_shared<Frame>();
      inner->parent = frame;
      assign_targets(*inner, s.targets, items[static_cast<size_t>(i)]);
      inner->vars.set("loop", loop_object(items, i));
      if (exec(s.body, inner) == Flow::break_loop) break;
    }
  }

  static Value loop_object(const List& items, int64_t i) {
    const auto length = static_cast<int64_t>(items.size());
    Dict loop;
    loop.items.reserve(12);
    loop.items.emplace_back("index", Value::from_int(i + 1));
    loop.items.emplace_back("index0", Value::from_int(i));
    loop.items.emplace_back("revindex", Value::from_int(length - i));
    loop.items.emplace_back("revindex0", Value::from_int(length - i - 1));
    loop.items.emplace_back("first", Value::from_bool(i == 0));
    loop.items.emplace_back("last", Value::from_bool(i == length - 1));
    loop.items.emplace_back("length", Value::from_int(length));
    loop.items.emplace_back("depth", Value::from_int(1));
    loop.items.emplace_back("depth0", Value::from_int(0));
    loop.items.emplace_back("previtem", i > 0 ? items[static_cast<size_t>(i - 1)]
                                              : Value::undefined("there is no previous item"));
    loop.items.emplace_back("nextitem", i + 1 < length ? items[static_cast<size_t>(i + 1)]
                                                       : Value::undefined("there is no next item"));
    loop.items.emplace_back("cycle", Value::from_callable("loop.cycle", [i](CallArgs& a) {
                              check(!a.positional.empty() && a.keyword.empty(),
                                    "loop.cycle() needs at least one value");
                              return a.positional[static_cast<size_t>(i) % a.positional.size()];
                            }));
    return Value::make_namespace(std::move(loop), /*allow_references=*/true);
  }

  Value call_macro(const Stmt& m, const FramePtr& defining, CallArgs& args) {
    DepthGuard guard(*this);
    limits_.step();
    check(args.positional.size() <= m.params.size(),
          "macro '" + m.name + "' takes not more than " + std::to_string(m.params.size()) +
              " argument(s), " + std::to_string(args.positional.size()) + " given");
    auto frame = std::make_shared<Frame>();
    frame->parent = defining;
    for (const auto& [key, value] : args.keyword) {
      bool known = false;
      for (size_t i = 0; i < m.params.size(); ++i) {
        if (m.params[i].first != key) continue;
        known = true;
        check(i >= args.positional.size(),
              "macro '" + m.name + "' got multiple values for argument '" + key + "'");
      }
      check(known, "macro '" + m.name + "' takes no keyword argument '" + key + "'");
    }
    for (size_t i = 0; i < m.params.size(); ++i) {
      const auto& [name, default_expr] = m.params[i];
      Value value;
      bool given = false;
      if (i < args.positional.size()) {
        value = args.positional[i];
        given = true;
      } else {
        for (const auto& [key, v] : args.keyword) {
          if (key == name) {
            value = v;
            given = true;
          }
        }
      }
      if (!given) {
        value = default_expr ? eval(*default_expr, frame)
                             : Value::undefined("parameter '" + name + "' was not provided");
      }
      assign(*frame, name, std::move(value));
    }
    return Value::from_string(render_body(m.body, frame));
  }

  // ----- expressions

  Value eval(const Expr& e, const FramePtr& frame) {
    DepthGuard guard(*this);
    try {
      return eval_node(e, frame);
    } catch (const Error& err) {
      if (is_located(err)) throw;
      throw Error(located(e.line, e.column, err.what()));
    }
  }

  // A filter node; `block_operand` stands in for the null operand of a filter block.
  Value eval_filter(const Expr& e, const FramePtr& frame, const Value* block_operand) {
    Value operand;
    if (!e.children[0]) {
      operand = *block_operand;
    } else if (e.children[0]->kind == Expr::Kind::filter && block_operand) {
      operand = eval_filter(*e.children[0], frame, block_operand);
    } else {
      operand = eval(*e.children[0], frame);
    }
    CallArgs args = eval_args(e, frame);
    try {
      return apply_filter(limits_, e.name, operand, args);
    } catch (const Error& err) {
      if (is_located(err)) throw;
      throw Error(located(e.line, e.column, err.what()));
    }
  }

  CallArgs eval_args(const Expr& e, const FramePtr& frame) {
    CallArgs args;
    for (size_t i = 1; i < e.children.size(); ++i) {
      args.positional.push_back(eval(*e.children[i], frame));
    }
    for (const auto& [key, expr] : e.kwargs) args.keyword.emplace_back(key, eval(*expr, frame));
    return args;
  }

  Value eval_node(const Expr& e, const FramePtr& frame) {
    switch (e.kind) {
      case Expr::Kind::literal:
        return e.value;
      case Expr::Kind::name:
        return lookup(frame, e.name);
      case Expr::Kind::list:
      case Expr::Kind::tuple: {
        List items;
        items.reserve(e.children.size());
        for (const ExprPtr& c : e.children) items.push_back(eval(*c, frame));
        return e.kind == Expr::Kind::list ? Value::from_list(std::move(items))
                                          : Value::from_tuple(std::move(items));
      }
      case Expr::Kind::dict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          const Value key = eval(*e.children[i], frame);
          check(key.is_string(), "dict keys must be strings here, not '" + type_name(key) + "'");
          d.set(key.string, eval(*e.children[i + 1], frame));
        }
        return Value::from_dict(std::move(d));
      }
      case Expr::Kind::attribute:
        return get_attribute(eval(*e.children[0], frame), e.name);
      case Expr::Kind::subscript:
        return get_item(eval(*e.children[0], frame), eval(*e.children[1], frame));
      case Expr::Kind::slice: {
        const Value obj = eval(*e.children[0], frame);
        Value parts[3];
        const Value* ptrs[3] = {nullptr, nullptr, nullptr};
        for (int i = 0; i < 3; ++i) {
          if (e.children[static_cast<size_t>(i) + 1]) {
            parts[i] = eval(*e.children[static_cast<size_t>(i) + 1], frame);
            ptrs[i] = &parts[i];
          }
        }
        return get_slice(obj, ptrs[0], ptrs[1], ptrs[2]);
      }
      case Expr::Kind::call: {
        const Value callee = eval(*e.children[0], frame);
        CallArgs args = eval_args(e, frame);
        if (callee.is_undefined()) fail_undefined(callee);
        check(callee.is_callable(), "'" + type_name(callee) + "' object is not callable");
        limits_.step();
        return callee.callable->call(args);
      }
      case Expr::Kind::filter:
        return eval_filter(e, frame, nullptr);
      case Expr::Kind::test: {
        const Value operand = eval(*e.children[0], frame);
        CallArgs args = eval_args(e, frame);
        return Value::from_bool(apply_test(limits_, e.name, operand, args));
      }
      case Expr::Kind::unary: {
        const Value v = eval(*e.children[0], frame);
        if (v.is_undefined()) fail_undefined(v);
        check(v.is_number(), "bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
        if (e.name == "+") return v.kind == Value::Kind::boolean ? Value::from_int(as_int(v)) : v;
        if (v.kind == Value::Kind::floating) return Value::from_float(-v.floating);
        check(as_int(v) != INT64_MIN, "integer overflow");
        return Value::from_int(-as_int(v));
      }
      case Expr::Kind::binary:
        return binary(e.name, eval(*e.children[0], frame), eval(*e.children[1], frame));
      case Expr::Kind::compare: {
        Value left = eval(*e.children[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.children[i + 1], frame);
          if (!compare(e.ops[i], left, right)) return Value::from_bool(false);
          left = std::move(right);
        }
        return Value::from_bool(true);
      }
      case Expr::Kind::logical_and: {
        Value left = eval(*e.children[0], frame);
        return truthy(left) ? eval(*e.children[1], frame) : left;
      }
      case Expr::Kind::logical_or: {
        Value left = eval(*e.children[0], frame);
        return truthy(left) ? left : eval(*e.children[1], frame);
      }
      case Expr::Kind::logical_not:
        return Value::from_bool(!truthy(eval(*e.children[0], frame)));
      case Expr::Kind::conditional:
        if (truthy(eval(*e.children[1], frame))) return eval(*e.children[0], frame);
        if (e.children[2]) return eval(*e.children[2], frame);
        return Value::undefined("the inline if expression had no else branch");
    }
    return Value::undefined();
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(b, a);
    if (op == "not in") return !contains(b, a);
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    if (op == "<") return less_than(a, b);
    if (op == ">") return less_than(b, a);
    if (op == "<=") return !less_than(b, a);
    return !less_than(a, b);  // >=
  }

  Value repeat(const Value& seq, int64_t times) {
    const int64_t n = std::max<int64_t>(times, 0);
    if (seq.is_string()) {
      limits_.check_size(seq.string.size() * static_cast<size_t>(n));
      std::string out;
      for (int64_t i = 0; i < n; ++i) out += seq.string;
      return Value::from_string(std::move(out));
    }
    limits_.check_size(seq.list->size() * static_cast<size_t>(n));
    List out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.list->begin(), seq.list->end());
    return seq.kind == Value::Kind::tuple ? Value::from_tuple(std::move(out))
                                          : Value::from_list(std::move(out));
  }

  Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string out = to_str(a) + to_str(b);
      limits_.check_size(out.size());
      return Value::from_string(std::move(out));
    }
    const bool numbers = a.is_number() && b.is_number();
    const bool ints = numbers && is_int_like(a) && is_int_like(b);
    if (op == "+") {
      if (ints) {
        int64_t r = 0;
        check(!__builtin_add_overflow(as_int(a), as_int(b), &r), "integer overflow");
        return Value::from_int(r);
      }
      if (numbers) return Value::from_float(as_float(a) + as_float(b));
      if (a.is_string() && b.is_string()) {
        limits_.check_size(a.string.size() + b.string.size());
        return Value::from_string(a.string + b.string);
      }
      if (a.is_sequence() && a.kind == b.kind) {
        limits_.check_size(a.list->size() + b.list->size());
        List out = *a.list;
        out.insert(out.end(), b.list->begin(), b.list->end());
        return a.kind == Value::Kind::tuple ? Value::from_tuple(std::move(out))
                                            : Value::from_list(std::move(out));
      }
      if (a.is_string() && !b.is_undefined() && !a.is_undefined()) {
        throw Error("can only concatenate str (not \"" + type_name(b) + "\") to str");
      }
      unsupported("+", a, b);
    }
    if (op == "-") {
      if (ints) {
        int64_t r = 0;
        check(!__builtin_sub_overflow(as_int(a), as_int(b), &r), "integer overflow");
        return Value::from_int(r);
      }
      if (numbers) return Value::from_float(as_float(a) - as_float(b));
      unsupported("-", a, b);
    }
    if (op == "*") {
      if (ints) {
        int64_t r = 0;
        check(!__builtin_mul_overflow(as_int(a), as_int(b), &r), "integer overflow");
        return Value::from_int(r);
      }
      if (numbers) return Value::from_float(as_float(a) * as_float(b));
      if ((a.is_string() || a.is_sequence()) && is_int_like(b)) return repeat(a, as_int(b));
      if ((b.is_string() || b.is_sequence()) && is_int_like(a)) return repeat(b, as_int(a));
      unsupported("*", a, b);
    }
    if (op == "/") {
      if (!numbers) unsupported("/", a, b);
      check(as_float(b) != 0, "division by zero");
      return Value::from_float(as_float(a) / as_float(b));
    }
    if (op == "//" || op == "%") {
      if (!numbers) {
        if (a.is_string() && op == "%") throw Error("string formatting with % is not supported");
        unsupported(op, a, b);
      }
      if (ints) {
        const int64_t x = as_int(a);
        const int64_t y = as_int(b);
        check(y != 0, "integer division or modulo by zero");
        check(!(x == INT64_MIN && y == -1), "integer overflow");
        int64_t q = x / y;
        int64_t r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value::from_int(op == "//" ? q : r);
      }
      // CPython's float divmod: the remainder takes the divisor's sign.
      const double x = as_float(a);
      const double y = as_float(b);
      check(y != 0, "float division or modulo by zero");
      double mod = std::fmod(x, y);
      double div = (x - mod) / y;
      if (mod != 0 && ((y < 0) != (mod < 0))) {
        mod += y;
        div -= 1.0;
      }
      if (op == "%") return Value::from_float(mod != 0 ? mod : std::copysign(0.0, y));
      double floor_div = std::copysign(0.0, x / y);
      if (div != 0) {
        floor_div = std::floor(div);
        if (div - floor_div > 0.5) floor_div += 1.0;
      }
      return Value::from_float(floor_div);
    }
    if (op == "**") {
      if (!numbers) unsupported("**", a, b);
      if (ints && as_int(b) >= 0) {
        int64_t result = 1;
        int64_t base = as_int(a);
        int64_t exp = as_int(b);
        while (exp > 0) {
          if (exp & 1) check(!__builtin_mul_overflow(result, base, &result), "integer overflow");
          exp >>= 1;
          if (exp > 0) check(!__builtin_mul_overflow(base, base, &base), "integer overflow");
        }
        return Value::from_int(result);
      }
      return Value::from_float(std::pow(as_float(a), as_float(b)));
    }
    throw Error("unknown operator '" + op + "'");
  }

  const RenderOptions& options_;
  RenderLimits limits_;
  FramePtr root_;
  std::string* out_ = nullptr;
  int depth_ = 0;
};

}  // namespace

std::string Template::render(const Dict& context, const RenderOptions& options) const {
  Renderer renderer(context, options);
  return renderer.run(parsed_->body);
}

}  // namespace bx::tmpl
