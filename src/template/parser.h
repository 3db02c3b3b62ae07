// Parser for the Jinja subset used by chat templates: builds the statement tree from tokens.
//
// Statements: if/elif/else, for (tuple targets, `if` filter, else; not `recursive`), set (also
// `set ns.attr = ...`, tuple targets and block set with filters), macro (parameters with
// defaults), filter blocks, break/continue (transformers enables loopcontrols) and
// `generation` (transformers' assistant-mask tag, rendered as its body). Expressions follow
// jinja2's precedence, lowest first: `x if c else y`, or, and, not, comparisons (==, !=, <, <=,
// >, >=, in, not in; chained), + -, ~, * / // %, ** (left-assoc, as in jinja2), unary - +,
// then postfix (.attr, [index], [a:b:c], calls) with filters `|f(args)` and tests `is [not] t`.
// Unknown tags, include/extends/import/call/block and the like are syntax errors.
// Errors are bx::Error "template:LINE:COL: message". Nesting is limited (kMaxNesting,
// kMaxExpressionHeight) so that no template can exhaust the stack.
#pragma once

#include <string_view>
#include <vector>

#include "template/ast.h"
#include "template/lexer.h"

namespace bx::tmpl {

inline constexpr int kMaxNesting = 200;           // statements and parenthesized expressions
inline constexpr int kMaxExpressionHeight = 300;  // the height of one expression's tree

Body parse(const std::vector<Token>& tokens);

}  // namespace bx::tmpl
