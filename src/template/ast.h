// Syntax tree of a parsed template: statements (text, output, if, for, set, macro, ...) holding
// expressions. Every node keeps the line and column where it starts, for error messages.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/value.h"

namespace bx::tmpl {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,    // value
    name,       // name
    list,       // children: elements
    tuple,      // children: elements
    dict,       // children: key0, value0, key1, value1, ...
    attribute,  // children[0].name
    subscript,  // children[0][children[1]]
    slice,      // children[0][children[1]:children[2]:children[3]] (absent parts are null)
    call,       // children[0](children[1..], kwargs)
    filter,     // children[0] | name(children[1..], kwargs); children[0] null in a filter block
    test,       // children[0] is name(children[1..])
    unary,      // name ("-" or "+") children[0]
    binary,     // children[0] name children[1]; name in + - * / // % ** ~
    compare,    // children[0] ops[0] children[1] ops[1] children[2] ... (Python chaining)
    logical_and,
    logical_or,
    logical_not,
    conditional,  // children[0] if children[1] else children[2] (null: undefined)
  };
  Kind kind = Kind::literal;
  int line = 0;
  int column = 0;
  int height = 1;  // 1 + the tallest child's height (the parser bounds it)
  Value value;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    text,          // text
    output,        // {{ expr }}
    if_chain,      // branches (condition, body) then else_body
    for_loop,      // for targets in expr [if filter] body [else else_body]
    set,           // set targets = expr  |  set ns.attribute = expr (attribute non-empty)
    set_block,     // set targets[0] [| filter] body endset
    macro,         // name(params with defaults) body
    filter_block,  // filter (expr: filter chain applied to the body's output) body
    break_loop,
    continue_loop,
    scope_body,  // body run as is ({% generation %})
  };
  Kind kind = Kind::text;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;  // for loop condition, or set_block filter chain
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attribute;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default null when none
};

}  // namespace bx::tmpl
