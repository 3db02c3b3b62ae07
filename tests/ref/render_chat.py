#!/usr/bin/env python3
"""Reference chat-template renderer: jinja2 set up the way transformers' apply_chat_template
sets it up (ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols
extension; the raise_exception and strftime_now globals; a tojson filter that calls json.dumps
with ensure_ascii=False), rendering with messages, tools, documents, add_generation_prompt, the
special tokens and any extra variables.

Usage: render_chat.py CASES.json OUT.json [--now UNIX_SECONDS]

CASES.json is a list of {"template": SOURCE, "messages": [...], "add_generation_prompt": bool,
"special_tokens": {"bos_token": ..., ...}, "extra": {...}}, or {"template": SOURCE,
"variables": {...}} to render a plain template with just those variables. OUT.json gets one result per case:
{"ok": true, "text": ...} or {"ok": false, "error_type": ..., "error": ...}. strftime_now formats
--now (local time) when given, else the current time.
"""

import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def make_environment(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        moment = datetime.fromtimestamp(now) if now is not None else datetime.now()
        return moment.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, cache, case):
    source = case["template"]
    if source not in cache:
        cache[source] = env.from_string(source)
    if "variables" in case:  # a plain template with its variables
        return cache[source].render(**case["variables"])
    extra = dict(case.get("extra") or {})
    tools = extra.pop("tools", None)
    documents = extra.pop("documents", None)
    kwargs = {**case.get("special_tokens", {}), **extra}
    return cache[source].render(messages=case["messages"], tools=tools, documents=documents,
                                add_generation_prompt=case["add_generation_prompt"], **kwargs)


def main():
    args = sys.argv[1:]
    now = None
    if "--now" in args:
        i = args.index("--now")
        now = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    with open(args[0], encoding="utf-8") as f:
        cases = json.load(f)
    env = make_environment(now)
    cache = {}
    results = []
    for case in cases:
        try:
            results.append({"ok": True, "text": render(env, cache, case)})
        except Exception as e:  # the C++ renderer must fail on the same cases
            results.append({"ok": False, "error_type": type(e).__name__, "error": str(e)})
    with open(args[1], "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
