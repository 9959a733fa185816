"""Reading JSON as exporters really write it.

orjson is the fast path. It refuses a few things that real exports hold and the standard ``json``
module reads: escaped lone surrogates (``"\\ud800"``, left where a tool cut an emoji in two),
integers past 64 bits, ``NaN``/``Infinity``. For those, :func:`loads` falls back to ``json`` and
says what it did; lone surrogates become U+FFFD (they cannot be encoded as UTF-8 or stored by
either database).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

_SURROGATE = re.compile("[\ud800-\udfff]")


def _rewrite(obj: Any, fix: Callable[[Any], Any], wants: Callable[[Any], bool]) -> Any:
    """``obj`` with every scalar ``v`` for which ``wants(v)`` replaced by ``fix(v)``, in place where
    ``obj`` is a container (keys too). Iterative: exports nest deeper than Python's recursion limit."""
    if not isinstance(obj, (dict, list)):
        return fix(obj) if wants(obj) else obj
    stack: list[Any] = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k in [k for k in node if wants(k)]:
                node[fix(k)] = node.pop(k)
            items = list(node.items())
        else:
            items = list(enumerate(node))
        for k, v in items:
            if isinstance(v, (dict, list)):
                stack.append(v)
            elif wants(v):
                node[k] = fix(v)
    return obj


def replace_surrogates(obj: Any) -> tuple[Any, int]:
    """``obj`` with every lone surrogate in its strings (keys too) replaced by U+FFFD; (obj, count)."""
    count = 0

    def fix(s: str) -> str:
        nonlocal count
        new, n = _SURROGATE.subn("\ufffd", s)
        count += n
        return new

    obj = _rewrite(obj, fix, lambda v: isinstance(v, str) and _SURROGATE.search(v) is not None)
    return obj, count


def _unstorable(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**64) or \
        (isinstance(v, float) and not math.isfinite(v))


def storable(obj: Any) -> Any:
    """``obj`` with what JSON columns cannot hold made storable, in place: integers past 64 bits
    become their decimal text, NaN and infinities null (PostgreSQL's jsonb refuses both)."""
    return _rewrite(obj, lambda v: str(v) if isinstance(v, int) else None, _unstorable)


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
