"""Reading JSON as exporters really write it.

orjson is the fast path. It refuses a few things that real exports hold and the standard ``json``
module reads: escaped lone surrogates (``"\\ud800"``, left where a tool cut an emoji in two),
integers past 64 bits, ``NaN``/``Infinity``. For those, :func:`loads` falls back to ``json`` and
says what it did; lone surrogates become U+FFFD (they cannot be encoded as UTF-8 or stored by
either database).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(obj: Any) -> tuple[Any, int]:
    """``obj`` with every lone surrogate in its strings (keys too) replaced by U+FFFD; (obj, count)."""
    count = 0

    def fix(s: str) -> str:
        nonlocal count
        new, n = _SURROGATE.subn("\ufffd", s)
        count += n
        return new

    if isinstance(obj, str):
        return fix(obj), count
    root = [obj]
    stack: list[Any] = [root]
    while stack:  # iterative: exports nest deeper than Python's recursion limit
        node = stack.pop()
        if isinstance(node, dict):
            for k in [k for k in node if isinstance(k, str) and _SURROGATE.search(k)]:
                node[fix(k)] = node.pop(k)
            items = list(node.items())
        else:
            items = list(enumerate(node))
        for k, v in items:
            if isinstance(v, str):
                if _SURROGATE.search(v):
                    node[k] = fix(v)
            elif isinstance(v, (dict, list)):
                stack.append(v)
    return root[0], count


def loads(data: bytes | str) -> tuple[Any, list[str]]:
    """(parsed JSON, warnings). Raises ``orjson.JSONDecodeError`` (a ``ValueError``) when neither
    parser can read it, with orjson's message (it names the position)."""
    try:
        return orjson.loads(data), []
    except orjson.JSONDecodeError as exc:
        first = exc
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise first from None
    obj, n = replace_surrogates(obj)
    if n:
        return obj, [f"{n} lone surrogate escape(s) such as \\ud800 replaced by U+FFFD"]
    return obj, [f"read with the standard JSON parser ({first})"]
