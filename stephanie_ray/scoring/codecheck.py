"""Implementability from checking the code: does each code block parse in its language, and is it complete?

Evidence the ``structure`` scorer does not look at: it counts code blocks, commands and steps;
this one *checks* them. Nothing is ever executed:

* **Python** — :func:`ast.parse` (REPL prompts ``>>>``/``...`` and notebook ``!``/``%`` lines stripped);
* **JSON** — :func:`json.loads` (or every line, for JSON Lines);
* **YAML** — ``yaml.safe_load_all`` (safe: builds plain data only);
* **SQL** — SQLite's own parser: ``EXPLAIN <statement>`` on an empty in-memory database with an
  authorizer that denies ATTACH; a missing table or column is not a syntax error and passes;
  ``sqlite3.complete_statement`` says whether the last statement is finished. Dialect-only syntax
  (PostgreSQL casts, MySQL backticks) may count as failing: SQLite's grammar is the yardstick;
* **shell** — ``bash -n`` (parse only, no execution; ``$ `` prompts stripped, output lines of a
  ``console`` block dropped); without bash, balanced quotes and brackets;
* **other languages** (JavaScript, TypeScript, Java, C, C++, C#, Go, Rust, ...) — balanced brackets
  outside strings and comments.

A block is *complete* when it holds no placeholders (``<your-token>``, ``YOUR_API_KEY``, a line that is only
``...``, ``TODO``/``FIXME``, ``# your code here``) and no dangling line continuation. A block's score
is 1 if it parses and is complete, 0.6 if it parses but is incomplete, 0 if it does not parse;
the answer's score is the mean over its checked blocks. An answer with no code and no commands
gets no score (there is nothing to check): implementability from prose is the structure scorer's job.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import yaml

from .base import Score

_BLOCK = re.compile(r"^\s{0,3}```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^\s{0,3}```", re.S | re.M)
_PROMPT_LINE = re.compile(r"^\s*\$ (.+)$", re.M)  # "$ pip install x" outside a fence
_PLACEHOLDER = re.compile(r"<(?:your|my|insert|replace|path|the|enter)[\w -]*>|\bYOUR_[A-Z_]+\b|"
                          r"^\s*(?:\.\.\.|…)\s*$|\b(?:TODO|FIXME)\b|#\s*(?:your|add your) code here", re.I | re.M)
LANGS = {
    "python": ("python", "py", "python3", "ipython", "pycon"), "json": ("json", "jsonl", "json5", "jsonc"),
    "yaml": ("yaml", "yml"), "sql": ("sql", "sqlite", "postgresql", "postgres", "mysql", "psql", "plsql"),
    "shell": ("bash", "sh", "shell", "zsh", "console", "shell-session", "terminal"),
    "braces": ("javascript", "js", "typescript", "ts", "tsx", "jsx", "java", "c", "cpp", "c++", "csharp", "cs",
               "go", "rust", "rs", "kotlin", "swift", "php", "scala", "dart"),
}
_LANG = {alias: lang for lang, aliases in LANGS.items() for alias in aliases}
PARSED_COMPLETE, PARSED_INCOMPLETE = 1.0, 0.6


@dataclass(frozen=True)
class BlockCheck:
    language: str  # python | json | yaml | sql | shell | braces
    parses: bool
    complete: bool
    why: str  # the parser's complaint, or what makes it incomplete ("" when fine)

    @property
    def value(self) -> float:
        return 0.0 if not self.parses else PARSED_COMPLETE if self.complete else PARSED_INCOMPLETE


def guess_language(code: str) -> str | None:
    s = code.strip()
    if not s:
        return None
    if s[0] in "{[":
        try:
            json.loads(s)
            return "json"
        except ValueError:
            pass
    if re.match(r"(?is)\s*(select|insert|update|delete|create|alter|drop|with)\b.*;?\s*$", s) and \
            re.search(r"(?i)\b(from|into|table|set|values|index)\b", s):
        return "sql"
    if re.search(r"^\s*(?:def |class |import |from \w+ import |print\(|>>> )", s, re.M):
        return "python"
    if re.match(r"^\s*(?:\$ |sudo |pip |npm |git |docker |curl |apt(?:-get)? |brew |cd |ls |export |mkdir )", s):
        return "shell"
    return None


def _python(code: str) -> str:
    repl = any(ln.lstrip().startswith(">>>") for ln in code.splitlines())
    lines = []
    for ln in code.splitlines():
        s = ln.lstrip()
        if repl:  # a REPL session: the code after the prompts; output lines dropped
            lines.append(s[4:] if s.startswith((">>> ", "... ")) else "")
        elif s.startswith(("!", "%")):  # notebook shell and magic lines
            lines.append("")
        else:
            lines.append(ln)
    try:
        ast.parse("\n".join(lines))
        return ""
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:  # null bytes
        return str(exc)


def _json(code: str) -> str:
    try:
        json.loads(code)
        return ""
    except ValueError as exc:
        lines = [ln for ln in code.splitlines() if ln.strip()]
        if len(lines) > 1:
            try:
                for ln in lines:
                    json.loads(ln)
                return ""
            except ValueError:
                pass
        return str(exc)[:80]


def _yaml(code: str) -> str:
    try:
        list(yaml.safe_load_all(code))
        return ""
    except yaml.YAMLError as exc:
        return " ".join(str(exc).split())[:80]


def _deny_attach(action: int, *args: object) -> int:
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK


def _split_sql(code: str) -> list[str]:
    out, cur = [], ""
    for ln in code.splitlines(keepends=True):
        cur += ln
        if sqlite3.complete_statement(cur):
            out.append(cur)
            cur = ""
    if cur.strip() and not all(ln.strip().startswith("--") for ln in cur.splitlines() if ln.strip()):
        out.append(cur)
    return out


def _sql(code: str) -> str:
    con = sqlite3.connect(":memory:")
    con.set_authorizer(_deny_attach)
    try:
        for stmt in _split_sql(code):
            body = stmt.strip().rstrip(";").strip()
            if not body:
                continue
            try:
                con.execute("EXPLAIN " + body)
            except sqlite3.Error as exc:
                msg = str(exc)
                if "syntax error" in msg or "incomplete input" in msg or "unrecognized token" in msg:
                    return msg[:80]
                # no such table / column / function, not authorized: the statement parsed
        return ""
    finally:
        con.close()


def _balanced(code: str) -> str:
    """Brackets and quotes balanced outside strings and comments (a tokenizer, not a parser)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i) or (c == "#" and (i == 0 or code[i - 1] in " \n\t")):
            j = code.find("\n", i)
            i = n if j < 0 else j
            continue
        if code.startswith("/*", i):
            j = code.find("*/", i + 2)
            if j < 0:
                return "unclosed comment"
            i = j + 2
            continue
        if c in "\"'`":
            j = i + 1
            while j < n and code[j] != c:
                if code[j] == "\\":
                    j += 1
                elif code[j] == "\n" and c != "`":
                    break  # an apostrophe in a comment-free line: not a string
                j += 1
            i = j + 1
            continue
        if c in "([{":
            stack.append(c)
        elif c in ")]}":
            if not stack or stack[-1] != pairs[c]:
                return f"unmatched {c!r}"
            stack.pop()
        i += 1
    return f"unclosed {stack[-1]!r}" if stack else ""


def _shell_text(code: str, console: bool) -> str:
    lines = []
    prompted = any(ln.lstrip().startswith("$ ") for ln in code.splitlines())
    for ln in code.splitlines():
        s = ln.lstrip()
        if s.startswith("$ "):
            lines.append(s[2:])
        elif prompted and (console or not s.startswith("#")):
            lines.append("")  # output of the command above
        else:
            lines.append(ln)
    return "\n".join(lines)


@lru_cache(maxsize=4096)
def _bash_n(code: str) -> str:
    bash = shutil.which("bash")
    if bash is None:
        return _balanced(code)
    try:
        res = subprocess.run([bash, "-n"], input=code.encode("utf-8", "replace"), capture_output=True, timeout=5)
    except subprocess.TimeoutExpired:
        return "bash -n timed out"
    if res.returncode == 0:
        return ""
    err = res.stderr.decode("utf-8", "replace").strip().splitlines()
    return (err[-1] if err else "syntax error").replace("bash: ", "")[:80]


def check_block(code: str, info: str = "") -> BlockCheck | None:
    """Check one code block; None when its language is unknown (not checked)."""
    lang = _LANG.get(info.lower()) if info else None
    if lang is None and info.lower() in ("", "text", "plaintext", "txt", "output", "code"):
        lang = guess_language(code)
    if lang is None:
        return None
    if lang == "python":
        err = _python(code)
    elif lang == "json":
        err = _json(code)
    elif lang == "yaml":
        err = _yaml(code)
    elif lang == "sql":
        err = _sql(code)
    elif lang == "shell":
        code = _shell_text(code, info.lower() in ("console", "shell-session", "terminal"))
        err = _bash_n(code)
    else:
        err = _balanced(code)
    holes = _PLACEHOLDER.findall(code)
    dangling = code.rstrip().endswith("\\")
    why = err or (f"placeholder {holes[0].strip()!r}" if holes else "ends in a line continuation" if dangling else "")
    return BlockCheck(lang, not err, not holes and not dangling, why)


def check_text(text: str) -> list[BlockCheck]:
    """Every checkable code block and ``$ command`` line of an answer."""
    checks = [c for info, code in _BLOCK.findall(text) if (c := check_block(code, info)) is not None]
    outside = _BLOCK.sub("", text)
    for cmd in _PROMPT_LINE.findall(outside):
        checks.append(check_block("$ " + cmd, "bash"))  # type: ignore[arg-type]
    return checks


class CodeCheckScorer:
    """Implementability from code that parses and is complete (module docstring); no score without code."""

    name = "codecheck"
    version = "1"
    dimensions = ("implementability",)
    needs_embeddings = False

    def score(self, items, dimensions):
        out = []
        for it in items:
            checks = check_text(it.text) if "implementability" in dimensions else []
            if not checks:
                out.append({})
                continue
            value = sum(c.value for c in checks) / len(checks)
            bad = [c for c in checks if c.why]
            parts = ", ".join(f"{c.language} {'ok' if not c.why else c.why}" for c in (bad or checks)[:3])
            out.append({"implementability": Score(value, f"{len(checks)} code blocks checked, "
                                                          f"{sum(c.parses for c in checks)} parse, "
                                                          f"{sum(c.parses and c.complete for c in checks)} complete: {parts}")})
        return out
