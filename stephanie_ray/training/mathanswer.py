"""Final answers of maths responses: the last ``\\boxed{...}``, normalised, and compared with a reference.

Pure string code (no sympy): a small LaTeX-to-arithmetic translator and a recursive-descent evaluator
that only knows numbers, ``+ - * / ^``, parentheses, ``\\pi``, ``\\sqrt`` and ``\\frac`` (never ``eval``).

Equivalence (:func:`answers_match`), in order:

1. both sides are comma-separated lists at the top level (``2, 3`` or ``(1, 2)``): bracketed lists must
   use the same brackets and match element-wise in order (tuples, intervals); bare lists match as
   multisets (solution sets: ``x = 3, 2`` equals ``2, 3``);
2. both sides evaluate to numbers: equal within ``rel_tol`` / ``abs_tol`` (``math.isclose``). A percentage
   ``50\\%`` stands for 0.5 *and* for 50 (the question may ask "what percent"), so it matches ``0.5``,
   ``\\frac12`` and ``50``, but ``0.5`` does not match ``50``;
3. otherwise the normalised texts are equal (case-folded, spaces, ``\\text{}``, ``$`` and ``\\left``
   dropped): ``\\text{(B)}`` equals ``(b)``.

Normalisation drops ``$ \\( \\) \\[ \\]``, ``\\left \\right \\! \\, \\; \\: \\quad \\displaystyle``, degree
signs, a trailing full stop, a leading single assignment (``x = 5`` -> ``5``) and thousands separators
(``1,234,567``, ``1{,}000``, ``1\\,000``); ``\\dfrac``/``\\tfrac`` are ``\\frac``; ``\\frac12`` is 1/2.
"""

from __future__ import annotations

import math
import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def _match_brace(text: str, open_at: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_at``, or -1."""
    depth = 0
    for i in range(open_at, len(text)):
        ch = text[i]
        if ch == "\\":  # an escaped brace \{ does not count
            continue
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i
    return -1


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) in ``text``, or None."""
    best: tuple[int, str] | None = None
    for cmd in _BOX_COMMANDS:
        start = 0
        while (i := text.find(cmd, start)) != -1:
            j = i + len(cmd)
            start = j
            if j < len(text) and text[j].isalpha():  # \boxedfoo is another command
                continue
            while j < len(text) and text[j] == " ":
                j += 1
            if j < len(text) and text[j] == "{":
                end = _match_brace(text, j)
                if end == -1:
                    continue  # unbalanced: not an answer
                content = text[j + 1:end]
            else:  # "\boxed 5": up to the next space or $
                m = re.match(r"[^\s$]+", text[j:])
                if not m or j == i + len(cmd):
                    continue
                content = m.group(0)
            if best is None or i > best[0]:
                best = (i, content)
    return None if best is None else best[1]


def _unwrap(s: str, commands: tuple[str, ...]) -> str:
    """``\\text{abc}`` -> ``abc`` for each command (brace-matched, nested ok)."""
    for cmd in commands:
        while (i := s.find(cmd + "{")) != -1:
            j = i + len(cmd)
            end = _match_brace(s, j)
            if end == -1:
                break
            s = s[:i] + s[j + 1:end] + s[end + 1:]
    return s


_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")


def normalise(answer: str) -> tuple[str, bool]:
    """(normalised LaTeX answer, whether it was a percentage)."""
    s = answer.strip().replace("\u2212", "-").replace("\u03c0", "\\pi ")  # Unicode minus, π
    s = re.sub(r"^\$+|\$+$", "", s).strip()
    s = re.sub(r"^\\[(\[]|\\[)\]]$", "", s).strip()
    s = _unwrap(s, ("\\text", "\\textbf", "\\textit", "\\mathrm", "\\mathbf", "\\operatorname", "\\mbox"))
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\(left|right|displaystyle)\b", "", s)
    s = re.sub(r"\\[!,;:]|\\quad|\\qquad|\\ ", "", s)  # LaTeX spacing (also the thin space in 1\,000)
    s = s.replace("{,}", ",")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°", "", s)
    percent = bool(re.search(r"(\\?%)\s*$", s))
    s = re.sub(r"\\?%\s*$", "", s).strip()
    s = s.rstrip(".").strip()
    if s.count("=") == 1 and re.match(r"^[^\W\d]\w*\s*=", s):  # x = 5
        s = s.split("=", 1)[1].strip()
    if _THOUSANDS.match(s):  # "1,234" is a number; "1, 234" stays a list
        s = s.replace(",", "")
    return s, percent


# --------------------------------------------------------------------------------- arithmetic
def _latex_to_expr(s: str) -> str:
    """LaTeX arithmetic -> an expression over numbers, pi, sqrt( ), + - * / ** and parentheses."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i) or s.startswith("\\sqrt", i):
            is_frac = s.startswith("\\frac", i)
            i += 5
            root = None
            if not is_frac and i < len(s) and s[i] == "[":
                end = s.find("]", i)
                if end == -1:
                    raise ValueError("unclosed \\sqrt[")
                root, i = s[i + 1:end], end + 1
            args = []
            for _ in range(2 if is_frac else 1):
                while i < len(s) and s[i] == " ":
                    i += 1
                if i >= len(s):
                    raise ValueError("missing argument")
                if s[i] == "{":
                    end = _match_brace(s, i)
                    if end == -1:
                        raise ValueError("unbalanced braces")
                    args.append(_latex_to_expr(s[i + 1:end]))
                    i = end + 1
                else:  # \frac12, \sqrt2: one character
                    args.append(s[i])
                    i += 1
            if is_frac:
                out.append(f"(({args[0]})/({args[1]}))")
            elif root is not None:
                out.append(f"(({args[0]})^(1/({_latex_to_expr(root)})))")
            else:
                out.append(f"sqrt({args[0]})")
            continue
        m = re.match(r"\\(pi|cdot|times|div)\b", s[i:])
        if m:
            out.append({"pi": " pi ", "cdot": "*", "times": "*", "div": "/"}[m.group(1)])
            i += m.end()
            continue
        ch = s[i]
        out.append("(" if ch == "{" else ")" if ch == "}" else ch)
        i += 1
    return "".join(out)


_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|(pi|sqrt)|(\*\*|[-+*/^()]))")


def _tokens(expr: str) -> list[str]:
    toks, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"unexpected {expr[pos:pos + 10]!r}")
        tok = m.group(1) or m.group(2) or m.group(3)
        toks.append("^" if tok == "**" else tok)
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    # implicit multiplication: 2pi, 2(3), )(, pi sqrt(2), 2 sqrt(3)
    out: list[str] = []
    for tok in toks:
        if out:
            left_val = out[-1] == ")" or out[-1] == "pi" or out[-1][0].isdigit() or out[-1][0] == "."
            right_val = tok in ("(", "pi", "sqrt") or tok[0].isdigit() or tok[0] == "."
            if left_val and right_val:
                out.append("*")
        out.append(tok)
    return out


class _Parser:
    def __init__(self, toks: list[str]):
        self.toks, self.i = toks, 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ValueError("unexpected end")
        self.i += 1
        return tok

    def expr(self) -> float:
        v = self.term()
        while self.peek() in ("+", "-"):
            v = v + self.term() if self.take() == "+" else v - self.term()
        return v

    def term(self) -> float:
        v = self.unary()
        while self.peek() in ("*", "/"):
            v = v * self.unary() if self.take() == "*" else v / self.unary()
        return v

    def unary(self) -> float:
        if self.peek() in ("+", "-"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exp = self.unary()  # right-associative, 2^-1 allowed
            if abs(exp) > 1000:
                raise ValueError("exponent too large")
            return float(base ** exp)
        return base

    def atom(self) -> float:
        tok = self.take()
        if tok == "(":
            v = self.expr()
            if self.take() != ")":
                raise ValueError("expected )")
            return v
        if tok == "pi":
            return math.pi
        if tok == "sqrt":
            return math.sqrt(self.atom())
        if tok[0].isdigit() or tok[0] == ".":
            return float(tok)
        raise ValueError(f"unexpected {tok!r}")


def evaluate(normalised: str) -> float | None:
    """The number a normalised answer denotes, or None when it is not plain arithmetic."""
    try:
        toks = _tokens(_latex_to_expr(normalised))
        if not toks:
            return None
        p = _Parser(toks)
        v = p.expr()
        if p.peek() is not None:
            return None
        v = float(v)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return v if math.isfinite(v) else None


def _canonical_text(s: str) -> str:
    s = re.sub(r"\s+", "", s.casefold())
    return s.replace("{", "").replace("}", "")


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def _scalar_match(a: str, r: str, rel_tol: float, abs_tol: float) -> bool:
    na, pa = normalise(a)
    nr, pr = normalise(r)
    va, vr = evaluate(na), evaluate(nr)
    if va is not None and vr is not None:
        cands_a = {va} | ({va / 100} if pa else set())
        cands_r = {vr} | ({vr / 100} if pr else set())
        return any(math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol) for x in cands_a for y in cands_r)
    return _canonical_text(na) == _canonical_text(nr) and bool(na)


def _as_list(n: str) -> tuple[str, list[str]] | None:
    """(brackets or "", elements) when ``n`` is a comma-separated list at the top level, else None."""
    if len(n) >= 2 and n[0] in "([" and n[-1] in ")]" and _split_top(n[1:-1]) and len(_split_top(n[1:-1])) > 1 \
            and len(_split_top(n)) == 1:
        return n[0] + n[-1], _split_top(n[1:-1])
    parts = _split_top(n)
    return ("", parts) if len(parts) > 1 else None


def answers_match(answer: str, reference: str, rel_tol: float = 1e-4, abs_tol: float = 1e-8) -> bool:
    """Whether ``answer`` (a box's content) equals ``reference`` (module docstring)."""
    la, lr = _as_list(normalise(answer)[0]), _as_list(normalise(reference)[0])
    if la is None and lr is None:
        return _scalar_match(answer, reference, rel_tol, abs_tol)
    if la is None or lr is None or la[0] != lr[0] or len(la[1]) != len(lr[1]):
        return False
    if la[0]:  # tuple or interval: in order
        return all(_scalar_match(x, y, rel_tol, abs_tol) for x, y in zip(la[1], lr[1]))
    remaining = list(lr[1])
    for x in la[1]:  # a bare list is a multiset: each element uses up one matching reference element
        hit = next((k for k, y in enumerate(remaining) if _scalar_match(x, y, rel_tol, abs_tol)), None)
        if hit is None:
            return False
        remaining.pop(hit)
    return True
