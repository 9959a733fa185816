"""Reading a user's JSONL file (judgments, training types, labels): one place for the errors.

Every line is a JSON object; blank lines are skipped; a file that cannot be read or a line that is
not an object is a :class:`~stephanie_ray.errors.UserError` naming the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UserError


def read_jsonl_objects(path: str | Path, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``"FILE:LINE"``, object) for each non-blank line of ``path``; ``what`` names the file in errors."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {p}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{p}:{n}: not JSON ({exc})") from None
        if not isinstance(d, dict):
            raise UserError(f"{p}:{n}: expected an object")
        yield f"{p}:{n}", d
