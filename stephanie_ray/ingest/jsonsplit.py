"""Find the byte ranges of the elements of a huge top-level JSON array, in bounded memory.

A person's ``conversations.json`` can be several GB: parsing it whole needs many times its size in
memory. :func:`array_elements` reads it in chunks and returns ``(start, end)`` byte offsets of
each top-level element, so workers can each read and parse their own ranges.

The scan is vectorised with numpy (no per-byte Python): unescaped quotes are located, every bracket
gets its in-string parity by a ``searchsorted`` against the quote positions, and a cumulative sum of
the remaining brackets gives the nesting depth. Only brackets decide boundaries; each element is
parsed (and so validated) later. What lies between elements must be a comma and whitespace, and the
array must be closed: otherwise :class:`SplitError` says where, after the good elements before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

_QUOTE, _BACKSLASH = 34, 92
_DELTA = np.zeros(256, dtype=np.int8)
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1
_WS = b" \t\r\n"


class SplitError(ValueError):
    def __init__(self, message: str, offset: int):
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


@dataclass
class _State:
    depth: int = 0            # nesting depth after the bytes seen so far (1 = inside the top-level array)
    in_string: int = 0        # 1 while inside a string
    trailing_bs: int = 0      # backslashes at the end of the previous chunk
    start: int | None = None  # offset of the element being read
    last_end: int | None = None  # end of the last complete element
    after_open: int = 0           # offset just after the array's '['


def _unescaped_quotes(a: np.ndarray, buf: bytes, trailing_bs: int) -> np.ndarray:
    q = np.flatnonzero(a == _QUOTE)
    if not len(q):
        return q
    prev_is_bs = np.empty(len(q), dtype=bool)
    prev_is_bs[q > 0] = a[q[q > 0] - 1] == _BACKSLASH
    prev_is_bs[q == 0] = trailing_bs > 0
    sus = np.flatnonzero(prev_is_bs)
    if not len(sus):
        return q
    keep = np.ones(len(q), dtype=bool)
    qs = q[sus]
    # The common case: exactly one backslash before the quote -> escaped.
    single = (qs >= 2) & (a[np.maximum(qs - 2, 0)] != _BACKSLASH)
    keep[sus[single]] = False
    for k in sus[~single]:  # runs of backslashes: count them (rare)
        p, n = int(q[k]) - 1, 0
        while p >= 0 and buf[p] == _BACKSLASH:
            n += 1
            p -= 1
        if p < 0:
            n += trailing_bs
        if n % 2:
            keep[k] = False
    return q[keep]


def _check_gap(f: BinaryIO, start: int, end: int, first: bool) -> None:
    """Between two elements only ',' and whitespace (before the first and after the last: only whitespace)."""
    if end - start > 4096:
        raise SplitError("unexpected content between array elements", start)
    pos = f.tell()
    f.seek(start)
    gap = f.read(end - start).strip(_WS)
    f.seek(pos)
    if gap != (b"" if first else b","):
        raise SplitError(f"unexpected {gap[:20]!r} between array elements", start)


def array_elements(f: BinaryIO, offset: int = 0, chunk_size: int = 1 << 24) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` of each element of the JSON array that begins at or after ``offset``.

    ``end`` is exclusive. Raises :class:`SplitError` (after yielding every complete element before
    the problem) when the array is truncated or has garbage between elements.
    """
    f.seek(offset)
    head = f.read(4096)
    k = 0
    while k < len(head) and head[k] in _WS:
        k += 1
    if k >= len(head) or head[k] != ord("["):
        raise SplitError("expected a JSON array", offset + k)
    base = offset
    st = _State(after_open=offset + k + 1)
    f.seek(base)
    while True:
        buf = f.read(chunk_size)
        if not buf:
            break
        a = np.frombuffer(buf, dtype=np.uint8)
        q = _unescaped_quotes(a, buf, st.trailing_bs)
        delta = _DELTA[a]
        b = np.flatnonzero(delta)
        if len(b):
            outside = ((np.searchsorted(q, b) + st.in_string) & 1) == 0
            b = b[outside]
        if len(b):
            d = delta[b].astype(np.int32)
            depth = np.cumsum(d) + st.depth
            # events at the array's own level: element opens (depth 1 -> 2) and closes (2 -> 1),
            # and the array's end (1 -> 0)
            opens = b[(d == 1) & (depth == 2)]
            closes = b[(d == -1) & (depth == 1)]
            array_end = b[(d == -1) & (depth == 0)]
            if len(array_end):
                stop = int(array_end[0])
                opens, closes = opens[opens < stop], closes[closes < stop]
            # scalar elements (strings, numbers) cannot occur in our formats: only objects/arrays count
            events = sorted([(int(x), 1) for x in opens] + [(int(x), -1) for x in closes])
            for pos, kind in events:
                if kind == 1:
                    gap_start = st.last_end if st.last_end is not None else st.after_open
                    _check_gap(f, gap_start, base + pos, first=st.last_end is None)
                    st.start = base + pos
                else:
                    assert st.start is not None
                    yield st.start, base + pos + 1
                    st.last_end = base + pos + 1
                    st.start = None
            if len(array_end):
                closed_at = base + int(array_end[0])
                tail_from = st.last_end if st.last_end is not None else st.after_open
                _check_gap(f, tail_from, closed_at, first=True)
                return
            st.depth = int(depth[-1])
        st.in_string = (st.in_string + len(q)) & 1
        t = len(buf) - len(buf.rstrip(b"\\"))
        st.trailing_bs = t + st.trailing_bs if t == len(buf) else t
        base += len(buf)
    where = st.start if st.start is not None else base
    raise SplitError("truncated JSON: the array is not closed" + (" (last element incomplete)" if st.start else ""), where)

