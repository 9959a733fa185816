"""One client for OpenAI-compatible chat-completions endpoints (vLLM, Ollama, llama.cpp, hosted APIs).

The LLM judge (scoring) and the reaction judge (reactions) both ask a model for one JSON object and
retry what went wrong; this module is that shared part. A caller supplies the messages and a
``validate(obj)`` that turns the reply's JSON object into its result or raises its own error class
(a subclass of ``Exception``) for a reply it cannot use. HTTP errors, timeouts, unreadable and
malformed replies are retried ``max_retries`` times with a short back-off; then the caller's error
class is raised with the last reason. Standard library only (urllib): nothing to install.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")
_JSON = re.compile(r"\{.*\}", re.S)


def reply_json_object(reply: Any, error: type[Exception]) -> Any:
    """The JSON object in a chat-completions reply's first message (models wrap it in prose or
    code fences); raises ``error`` naming what is missing."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise error("reply has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise error("reply content is not text")
    m = _JSON.search(content)
    if not m:
        raise error(f"no JSON object in the reply: {content[:80]!r}")
    try:
        return json.loads(m.group(0))
    except json.JSONDecodeError as exc:
        raise error(f"malformed JSON in the reply ({exc.msg})") from None


@dataclass(frozen=True)
class ChatEndpoint:
    base_url: str  # e.g. http://localhost:8000/v1 (".../chat/completions" is appended)
    model: str
    api_key: str = ""
    timeout_s: float = 30.0
    max_retries: int = 2

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def ask(self, system: str, user: str, validate: Callable[[Any], T], error: type[Exception],
            what: str = "judge") -> T:
        """``validate(reply JSON)`` of the first reply it accepts; ``error`` after the last retry."""
        body = json.dumps({"model": self.model, "temperature": 0,
                           "messages": [{"role": "system", "content": system},
                                        {"role": "user", "content": user}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    reply = json.loads(resp.read().decode("utf-8"))
                return validate(reply)
            except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError, UnicodeDecodeError,
                    error) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    last = f"HTTP {exc.code} {exc.reason}"
                else:
                    reason = getattr(exc, "reason", None)
                    last = f"{type(exc).__name__}: {reason if reason is not None else exc}"
                if attempt < self.max_retries:
                    time.sleep(min(2.0, 0.2 * 2 ** attempt))
        raise error(f"{what} failed after {self.max_retries + 1} attempts: {last}")
