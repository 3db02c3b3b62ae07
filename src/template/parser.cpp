#include "template/parser.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "core/error.h"

namespace bx::tmpl {
namespace {

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::data:
      return "text";
    case TokenType::variable_begin:
      return "'{{'";
    case TokenType::variable_end:
      return "end of print statement '}}'";
    case TokenType::block_begin:
      return "'{%'";
    case TokenType::block_end:
      return "end of statement block '%}'";
    case TokenType::name:
      return "'" + t.text + "'";
    case TokenType::string:
      return "string literal";
    case TokenType::integer:
    case TokenType::floating:
      return "number " + t.text;
    case TokenType::op:
      return "'" + t.text + "'";
    case TokenType::eof:
      return "end of template";
  }
  return "token";
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

  Body parse_template() {
    Body body = parse_statements({});
    if (cur().type != TokenType::eof) fail(cur(), "unexpected " + describe(cur()));
    return body;
  }

 private:
  // ----- token helpers
  const Token& cur() const { return tokens_[pos_]; }
  const Token& peek(size_t n = 1) const { return tokens_[std::min(pos_ + n, tokens_.size() - 1)]; }
  const Token& advance() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == TokenType::op && cur().text == op; }
  bool is_name(const char* name) const {
    return cur().type == TokenType::name && cur().text == name;
  }
  [[noreturn]] static void fail(const Token& t, const std::string& message) {
    throw Error(located(t.line, t.column, message));
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(cur(), std::string("expected '") + op + "', got " + describe(cur()));
    advance();
  }
  std::string expect_name() {
    if (cur().type != TokenType::name) fail(cur(), "expected a name, got " + describe(cur()));
    return advance().text;
  }
  void expect_block_end() {
    if (cur().type != TokenType::block_end) {
      fail(cur(), "expected end of statement block '%}', got " + describe(cur()));
    }
    advance();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxNesting) {
        fail(parser.cur(),
             "template nested more than " + std::to_string(kMaxNesting) + " levels deep");
      }
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  template <typename... Args>
  static ExprPtr node(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  // Sets n's height from its children and refuses trees taller than kMaxExpressionHeight (long
  // chains like a + b + c + ... or x|f|f|f... grow the tree without recursion in the parser,
  // but evaluating and destroying the tree recurse).
  static ExprPtr sized(ExprPtr n) {
    int height = 0;
    for (const ExprPtr& c : n->children) {
      if (c) height = std::max(height, c->height);
    }
    for (const auto& [key, c] : n->kwargs) height = std::max(height, c->height);
    n->height = height + 1;
    if (n->height > kMaxExpressionHeight) {
      throw Error(located(
          n->line, n->column,
          "expression nested more than " + std::to_string(kMaxExpressionHeight) + " levels deep"));
    }
    return n;
  }

  static StmtPtr stmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  // ----- statements

  // Parses until a block whose tag name is in `end_tags` (left unconsumed, after `{%`) or eof.
  Body parse_statements(const std::set<std::string>& end_tags) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::eof) {
        if (!end_tags.empty()) {
          std::string names;
          for (const auto& n : end_tags) names += (names.empty() ? "'" : " or '") + n + "'";
          fail(t, "unexpected end of template, expected " + names);
        }
        return body;
      }
      if (t.type == TokenType::data) {
        auto s = stmt(Stmt::Kind::text, t);
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.type == TokenType::variable_begin) {
        advance();
        auto s = stmt(Stmt::Kind::output, t);
        s->expr = parse_tuple(true);
        if (cur().type != TokenType::variable_end) {
          fail(cur(), "expected end of print statement '}}', got " + describe(cur()));
        }
        advance();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::block_begin) {
        const Token& tag = peek();
        if (tag.type == TokenType::name && end_tags.count(tag.text)) {
          advance();  // leave the tag name for the caller
          return body;
        }
        advance();
        body.push_back(parse_tag());
      } else {
        fail(t, "unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_tag() {
    const Token& tag = cur();
    if (tag.type != TokenType::name) fail(tag, "expected a statement name, got " + describe(tag));
    const std::string name = tag.text;
    advance();
    if (name == "if") return parse_if(tag);
    if (name == "for") return parse_for(tag);
    if (name == "set") return parse_set(tag);
    if (name == "macro") return parse_macro(tag);
    if (name == "filter") return parse_filter_block(tag);
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(tag, "'" + name + "' outside of a for loop");
      expect_block_end();
      return stmt(name == "break" ? Stmt::Kind::break_loop : Stmt::Kind::continue_loop, tag);
    }
    if (name == "generation") {
      expect_block_end();
      auto s = stmt(Stmt::Kind::scope_body, tag);
      s->body = parse_statements({"endgeneration"});
      advance();
      expect_block_end();
      return s;
    }
    static const std::set<std::string> kEnds = {"endif",    "endfor",    "endset",
                                                "endmacro", "endfilter", "endgeneration",
                                                "elif",     "else",      "endraw"};
    if (kEnds.count(name)) fail(tag, "unexpected '" + name + "': no open block it could close");
    static const std::set<std::string> kUnsupported = {"include",    "extends", "import", "from",
                                                       "block",      "call",    "with",   "do",
                                                       "autoescape", "trans"};
    if (kUnsupported.count(name)) {
      fail(tag, "the '" + name + "' statement is not supported in chat templates");
    }
    fail(tag, "unknown statement '" + name + "'");
  }

  StmtPtr parse_if(const Token& at) {
    auto s = stmt(Stmt::Kind::if_chain, at);
    ExprPtr condition = parse_tuple(true);
    expect_block_end();
    while (true) {
      Body body = parse_statements({"elif", "else", "endif"});
      s->branches.emplace_back(std::move(condition), std::move(body));
      const std::string tag = advance().text;
      if (tag == "elif") {
        condition = parse_tuple(true);
        expect_block_end();
        continue;
      }
      if (tag == "else") {
        expect_block_end();
        s->else_body = parse_statements({"endif"});
        advance();
      }
      expect_block_end();
      return s;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = is_op("(");
    if (paren) advance();
    names.push_back(expect_name());
    while (is_op(",")) {
      advance();
      if (cur().type != TokenType::name) break;
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return names;
  }

  StmtPtr parse_for(const Token& at) {
    auto s = stmt(Stmt::Kind::for_loop, at);
    s->targets = parse_targets();
    if (!is_name("in")) fail(cur(), "expected 'in' in for loop, got " + describe(cur()));
    advance();
    s->expr = parse_tuple(false);
    if (is_name("if")) {
      advance();
      s->filter = parse_tuple(true);
    }
    if (is_name("recursive")) fail(cur(), "recursive for loops are not supported");
    expect_block_end();
    ++loop_depth_;
    s->body = parse_statements({"else", "endfor"});
    --loop_depth_;
    if (advance().text == "else") {
      expect_block_end();
      s->else_body = parse_statements({"endfor"});
      advance();
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set(const Token& at) {
    if (cur().type == TokenType::name && peek().type == TokenType::op && peek().text == "." &&
        peek(2).type == TokenType::name) {
      auto s = stmt(Stmt::Kind::set, at);
      s->targets.push_back(advance().text);
      advance();
      s->attribute = advance().text;
      expect_op("=");
      s->expr = parse_tuple(true);
      expect_block_end();
      return s;
    }
    std::vector<std::string> targets = parse_targets();
    if (is_op("=")) {
      advance();
      auto s = stmt(Stmt::Kind::set, at);
      s->targets = std::move(targets);
      s->expr = parse_tuple(true);
      expect_block_end();
      return s;
    }
    if (targets.size() != 1) fail(cur(), "a block set assigns exactly one name");
    auto s = stmt(Stmt::Kind::set_block, at);
    s->targets = std::move(targets);
    if (is_op("|")) s->filter = parse_filter_chain(nullptr);
    expect_block_end();
    s->body = parse_statements({"endset"});
    advance();
    expect_block_end();
    return s;
  }

  StmtPtr parse_macro(const Token& at) {
    auto s = stmt(Stmt::Kind::macro, at);
    s->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string param = expect_name();
      ExprPtr default_value;
      if (is_op("=")) {
        advance();
        default_value = parse_expression(true);
      } else if (!s->params.empty() && s->params.back().second) {
        fail(cur(), "non-default argument '" + param + "' follows default argument");
      }
      s->params.emplace_back(std::move(param), std::move(default_value));
    }
    advance();
    expect_block_end();
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endmacro"});
    loop_depth_ = saved_loop_depth;
    advance();
    if (cur().type == TokenType::name && cur().text == s->name) advance();
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block(const Token& at) {
    auto s = stmt(Stmt::Kind::filter_block, at);
    s->filter = parse_filter_names(nullptr);
    expect_block_end();
    s->body = parse_statements({"endfilter"});
    advance();
    expect_block_end();
    return s;
  }

  // ----- expressions

  // Comma-separated expressions; a tuple when a comma appears (or `()` inside parentheses).
  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parentheses = false) {
    const Token& at = cur();
    std::vector<ExprPtr> items;
    bool saw_comma = false;
    while (true) {
      if (!items.empty()) {
        if (!is_op(",")) break;
        advance();
        saw_comma = true;
      }
      if (tuple_ends()) break;
      items.push_back(parse_expression(with_condexpr));
    }
    if (!saw_comma) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail(cur(), "expected an expression, got " + describe(cur()));
    }
    auto t = node(Expr::Kind::tuple, at);
    t->children = std::move(items);
    return sized(std::move(t));
  }
  bool tuple_ends() const {
    const Token& t = cur();
    if (t.type == TokenType::variable_end || t.type == TokenType::block_end ||
        t.type == TokenType::eof) {
      return true;
    }
    if (t.type == TokenType::op && (t.text == ")" || t.text == "=")) return true;
    return t.type == TokenType::name && (t.text == "if" || t.text == "recursive");
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const Token& at = cur();
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      advance();
      auto c = node(Expr::Kind::conditional, at);
      ExprPtr condition = parse_or();
      ExprPtr otherwise;
      if (is_name("else")) {
        advance();
        otherwise = parse_condexpr();
      }
      c->children.push_back(std::move(expr));
      c->children.push_back(std::move(condition));
      c->children.push_back(std::move(otherwise));
      expr = sized(std::move(c));
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Token& at = advance();
      auto n = node(Expr::Kind::logical_or, at);
      n->children.push_back(std::move(left));
      n->children.push_back(parse_and());
      left = sized(std::move(n));
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Token& at = advance();
      auto n = node(Expr::Kind::logical_and, at);
      n->children.push_back(std::move(left));
      n->children.push_back(parse_not());
      left = sized(std::move(n));
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const Token& at = advance();
      auto n = node(Expr::Kind::logical_not, at);
      n->children.push_back(parse_not());
      return sized(std::move(n));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& at = cur();
    ExprPtr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      std::string op;
      if (cur().type == TokenType::op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = advance().text;
      } else if (is_name("in")) {
        advance();
        op = "in";
      } else if (is_name("not") && peek().type == TokenType::name && peek().text == "in") {
        advance();
        advance();
        op = "not in";
      } else {
        break;
      }
      ops.push_back(op);
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto n = node(Expr::Kind::compare, at);
    n->children.push_back(std::move(first));
    for (auto& e : operands) n->children.push_back(std::move(e));
    n->ops = std::move(ops);
    return sized(std::move(n));
  }

  ExprPtr binary(const Token& at, std::string op, ExprPtr left, ExprPtr right) {
    auto n = node(Expr::Kind::binary, at);
    n->name = std::move(op);
    n->children.push_back(std::move(left));
    n->children.push_back(std::move(right));
    return sized(std::move(n));
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = advance();
      left = binary(at, at.text, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Token& at = advance();
      left = binary(at, "~", std::move(left), parse_math2());
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = advance();
      left = binary(at, at.text, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& at = advance();
      left = binary(at, "**", std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr expr;
    if (is_op("-") || is_op("+")) {
      const Token& at = advance();
      expr = node(Expr::Kind::unary, at);
      expr->name = at.text;
      expr->children.push_back(parse_unary(false));
      expr = sized(std::move(expr));
    } else {
      expr = parse_primary();
    }
    expr = parse_postfix(std::move(expr));
    if (with_filter) expr = parse_filter_expr(std::move(expr));
    return expr;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case TokenType::name: {
        advance();
        if (t.text == "true" || t.text == "True") return literal(t, Value::from_bool(true));
        if (t.text == "false" || t.text == "False") return literal(t, Value::from_bool(false));
        if (t.text == "none" || t.text == "None") return literal(t, Value::none());
        auto n = node(Expr::Kind::name, t);
        n->name = t.text;
        return n;
      }
      case TokenType::string: {
        std::string text;
        while (cur().type == TokenType::string) text += advance().text;
        return literal(t, Value::from_string(std::move(text)));
      }
      case TokenType::integer:
        advance();
        return literal(t, parse_integer(t));
      case TokenType::floating: {
        advance();
        double d = 0;
        const auto res = std::from_chars(t.text.data(), t.text.data() + t.text.size(), d);
        if (res.ec != std::errc() && res.ec != std::errc::result_out_of_range) {
          fail(t, "invalid number " + t.text);
        }
        if (res.ec == std::errc::result_out_of_range) d = std::strtod(t.text.c_str(), nullptr);
        return literal(t, Value::from_float(d));
      }
      case TokenType::op:
        if (t.text == "(") {
          advance();
          ExprPtr inner = parse_tuple(true, true);
          expect_op(")");
          return inner;
        }
        if (t.text == "[") {
          advance();
          auto list = node(Expr::Kind::list, t);
          while (!is_op("]")) {
            if (!list->children.empty()) expect_op(",");
            if (is_op("]")) break;
            list->children.push_back(parse_expression(true));
          }
          advance();
          return sized(std::move(list));
        }
        if (t.text == "{") {
          advance();
          auto dict = node(Expr::Kind::dict, t);
          while (!is_op("}")) {
            if (!dict->children.empty()) expect_op(",");
            if (is_op("}")) break;
            dict->children.push_back(parse_expression(true));
            expect_op(":");
            dict->children.push_back(parse_expression(true));
          }
          advance();
          return sized(std::move(dict));
        }
        break;
      default:
        break;
    }
    fail(t, "unexpected " + describe(t) + ", expected an expression");
  }

  static ExprPtr literal(const Token& at, Value v) {
    auto n = node(Expr::Kind::literal, at);
    n->value = std::move(v);
    return n;
  }

  static Value parse_integer(const Token& t) {
    std::string s = t.text;
    int base = 10;
    if (s.size() > 1 && s[0] == '0') {
      const char b = static_cast<char>(std::tolower(static_cast<unsigned char>(s[1])));
      if (b == 'x') base = 16;
      if (b == 'o') base = 8;
      if (b == 'b') base = 2;
      if (base != 10) s = s.substr(2);
    }
    int64_t value = 0;
    const auto res = std::from_chars(s.data(), s.data() + s.size(), value, base);
    if (res.ec != std::errc() || res.ptr != s.data() + s.size()) {
      fail(t, "integer literal " + t.text + " is invalid or does not fit in 64 bits");
    }
    return Value::from_int(value);
  }

  ExprPtr parse_postfix(ExprPtr expr) {
    while (true) {
      if (is_op(".")) {
        const Token& at = advance();
        if (cur().type == TokenType::name) {
          auto n = node(Expr::Kind::attribute, at);
          n->name = advance().text;
          n->children.push_back(std::move(expr));
          expr = sized(std::move(n));
        } else if (cur().type == TokenType::integer) {
          auto n = node(Expr::Kind::subscript, at);
          n->children.push_back(std::move(expr));
          n->children.push_back(literal(cur(), parse_integer(cur())));
          advance();
          expr = sized(std::move(n));
        } else {
          fail(cur(), "expected an attribute name after '.', got " + describe(cur()));
        }
      } else if (is_op("[")) {
        expr = parse_subscript(std::move(expr));
      } else if (is_op("(")) {
        expr = parse_call(std::move(expr));
      } else {
        return expr;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target) {
    const Token& at = advance();  // '['
    ExprPtr first;
    if (!is_op(":")) {
      first = parse_expression(true);
      if (is_op("]")) {
        advance();
        auto n = node(Expr::Kind::subscript, at);
        n->children.push_back(std::move(target));
        n->children.push_back(std::move(first));
        return sized(std::move(n));
      }
    }
    auto n = node(Expr::Kind::slice, at);
    n->children.push_back(std::move(target));
    n->children.push_back(std::move(first));
    expect_op(":");
    ExprPtr stop;
    if (!is_op("]") && !is_op(":")) stop = parse_expression(true);
    n->children.push_back(std::move(stop));
    ExprPtr step;
    if (is_op(":")) {
      advance();
      if (!is_op("]")) step = parse_expression(true);
    }
    n->children.push_back(std::move(step));
    expect_op("]");
    return sized(std::move(n));
  }

  // `(args)`: positional then keyword (name=value) arguments.
  void parse_args(Expr& call) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) fail(cur(), "*args and **kwargs in calls are not supported");
      if (cur().type == TokenType::name && peek().type == TokenType::op && peek().text == "=") {
        std::string key = advance().text;
        advance();
        call.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail(cur(), "positional argument follows keyword argument");
        call.children.push_back(parse_expression(true));
      }
    }
    advance();
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto n = node(Expr::Kind::call, cur());
    n->line = callee->line;  // errors point at what is called
    n->column = callee->column;
    n->children.push_back(std::move(callee));
    parse_args(*n);
    return sized(std::move(n));
  }

  ExprPtr parse_filter_expr(ExprPtr expr) {
    while (true) {
      if (is_op("|")) {
        expr = parse_filter_chain(std::move(expr));
      } else if (is_name("is")) {
        expr = parse_test(std::move(expr));
      } else if (is_op("(")) {
        expr = parse_call(std::move(expr));
      } else {
        return expr;
      }
    }
  }

  // One or more `| name(args)` after `operand`.
  ExprPtr parse_filter_chain(ExprPtr operand) {
    while (is_op("|")) {
      advance();
      operand = parse_filter_names(std::move(operand));
    }
    return operand;
  }

  // A filter name (dotted names joined) with optional arguments, applied to `operand`.
  ExprPtr parse_filter_names(ExprPtr operand) {
    const Token& at = cur();
    auto n = node(Expr::Kind::filter, at);
    if (cur().type != TokenType::name)
      fail(cur(), "expected a filter name, got " + describe(cur()));
    n->name = expect_name();
    while (is_op(".")) {
      advance();
      n->name += '.';
      n->name += expect_name();
    }
    n->children.push_back(std::move(operand));
    if (is_op("(")) parse_args(*n);
    return sized(std::move(n));
  }

  ExprPtr parse_test(ExprPtr operand) {
    const Token& at = advance();  // 'is'
    bool negated = false;
    if (is_name("not")) {
      advance();
      negated = true;
    }
    auto n = node(Expr::Kind::test, at);
    if (cur().type != TokenType::name) fail(cur(), "expected a test name, got " + describe(cur()));
    n->name = expect_name();
    while (is_op(".")) {
      advance();
      n->name += '.';
      n->name += expect_name();
    }
    n->children.push_back(std::move(operand));
    const Token& t = cur();
    if (is_op("(")) {
      parse_args(*n);
    } else if ((t.type == TokenType::name || t.type == TokenType::string ||
                t.type == TokenType::integer || t.type == TokenType::floating ||
                (t.type == TokenType::op && (t.text == "(" || t.text == "[" || t.text == "{"))) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail(t, "you cannot chain multiple tests with 'is'");
      n->children.push_back(parse_postfix(parse_primary()));
    }
    if (!negated) return sized(std::move(n));
    auto neg = node(Expr::Kind::logical_not, at);
    neg->children.push_back(sized(std::move(n)));
    return sized(std::move(neg));
  }

  const std::vector<Token>& tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens) {
  return Parser(tokens).parse_template();
}

}  // namespace bx::tmpl
