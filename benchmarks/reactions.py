"""Reaction classifier benchmark: agreement with hand labels, per language and overall.

    .venv/bin/python benchmarks/reactions.py                                   # the held-out test set
    .venv/bin/python benchmarks/reactions.py --file tests/data/reactions_dev.jsonl \\
        --file tests/data/reactions_samples.jsonl                               # dev set, real samples
    .venv/bin/python benchmarks/reactions.py --llm-url http://localhost:8000/v1 --llm-model qwen2.5
    .venv/bin/python benchmarks/reactions.py --hf-model path/to/classifier
    .venv/bin/python benchmarks/reactions.py --extract /work/shared/samples/chatgpt/conversations.json

For each backend available (rules always; llm with --llm-url; hf with --hf-model) and each --file
(JSON lines: prompt, answer, next, regenerated, edited, label, lang): n, accuracy, Cohen's kappa over
the four labels, precision / recall of "corrected" and of "accepted", per language and overall,
next to a trivial baseline ("continued" whenever there is a next message, else "none"), and the
overall confusion matrix. The last line is one JSON object with every figure.

--extract reads ChatGPT (``mapping`` tree; the active thread from ``current_node`` back to the
root) or Claude (``chat_messages``) exports directly and prints one unlabelled JSON line per answer:
(conversation uuid, prompt, answer, next) — the raw material of tests/data/reactions_samples.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stephanie_ray.config import ReactionsConfig  # noqa: E402
from stephanie_ray.reactions import ReactionError, classify_batch, make_backend  # noqa: E402
from stephanie_ray.reactions.base import LABELS  # noqa: E402
from stephanie_ray.reactions.evaluate import Agreement, agreement, baseline_label, read_labelled  # noqa: E402

TEST_SET = REPO / "benchmarks" / "data" / "reactions" / "reactions.jsonl"


# ----------------------------------------------------------------------------- sample extraction


def _chatgpt_text(msg: dict[str, Any]) -> str:
    content = msg.get("content") or {}
    parts = [p if isinstance(p, str) else p.get("text", "") for p in content.get("parts") or []
             if isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str))]
    if not parts and isinstance(content.get("text"), str):
        parts = [content["text"]]
    return "\n".join(parts).strip()


def _chatgpt_thread(conv: dict[str, Any]) -> list[tuple[str, str]]:
    mapping, node, path = conv["mapping"], conv.get("current_node"), []
    while node:  # the active thread: current_node back to the root
        path.append(node)
        node = mapping[node].get("parent")
    msgs: list[tuple[str, str]] = []
    for nid in reversed(path):
        msg = mapping[nid].get("message")
        if not msg:
            continue
        role, text = msg["author"]["role"], _chatgpt_text(msg)
        if role not in ("user", "assistant") or not text:
            continue
        if msgs and msgs[-1][0] == role == "assistant":  # one answer in several messages (tool calls between)
            msgs[-1] = (role, msgs[-1][1] + "\n" + text)
        else:
            msgs.append((role, text))
    return msgs


def _claude_thread(conv: dict[str, Any]) -> list[tuple[str, str]]:
    return [("user" if m["sender"] == "human" else "assistant", m.get("text") or "")
            for m in conv["chat_messages"] if (m.get("text") or "").strip()]


def extract_triples(path: str | Path) -> Iterator[dict[str, Any]]:
    """(uuid, index, prompt, answer, next) for every answer on each conversation's active thread."""
    for conv in json.loads(Path(path).read_text(encoding="utf-8")):
        claude = "chat_messages" in conv
        msgs = _claude_thread(conv) if claude else _chatgpt_thread(conv)
        uuid = conv.get("uuid") or conv.get("conversation_id") or conv.get("id")
        k = 0
        for i, (role, text) in enumerate(msgs):
            if role == "assistant" and i > 0 and msgs[i - 1][0] == "user":
                nxt = msgs[i + 1][1] if i + 1 < len(msgs) and msgs[i + 1][0] == "user" else None
                yield {"conversation": uuid, "index": k, "source": "claude" if claude else "chatgpt",
                       "prompt": msgs[i - 1][1], "answer": text, "next": nxt}
                k += 1


# ----------------------------------------------------------------------------- evaluation


def _fmt(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:5.2f}"


def _row(name: str, a: Agreement) -> str:
    c, p = a.corrected, a.accepted
    return (f"{name:<22} {a.n:>4}  {_fmt(a.accuracy)}  {_fmt(a.kappa)}   {_fmt(c.precision)} {_fmt(c.recall)}   "
            f"{_fmt(p.precision)} {_fmt(p.recall)}")


def evaluate_file(path: Path, backends: dict[str, Any]) -> dict[str, Any]:
    rows = read_labelled(path)
    gold = [r.label for r in rows]
    preds: dict[str, list[str]] = {"baseline": [baseline_label(r.item) for r in rows]}
    failed: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for name, backend in backends.items():
        t0 = time.perf_counter()
        res = classify_batch([r.item for r in rows], backend=backend)
        seconds[name] = round(time.perf_counter() - t0, 3)
        failed[name] = sum(isinstance(x, ReactionError) for x in res)
        # a failed item counts as a wrong answer: 'continued' is what a caller would fall back to
        preds[name] = [x.label if not isinstance(x, ReactionError) else "continued" for x in res]
    langs = sorted({r.lang for r in rows})
    out: dict[str, Any] = {"file": str(path), "n": len(rows), "failed": failed, "seconds": seconds, "systems": {}}
    print(f"\n== {path}  ({len(rows)} items)")
    header = (f"{'system / language':<22} {'n':>4}  {'acc':>5}  {'kappa':>5}   {'corrP':>5} {'corrR':>5}   "
              f"{'accP':>5} {'accR':>5}")
    for name, pred in preds.items():
        print(f"\n-- {name}" + (f"  ({failed[name]} items failed, {seconds[name]} s)" if name in failed else ""))
        print(header)
        overall = agreement(gold, pred)
        per_lang = {}
        for lang in langs:
            idx = [i for i, r in enumerate(rows) if r.lang == lang]
            per_lang[lang] = agreement([gold[i] for i in idx], [pred[i] for i in idx])
            print(_row(lang, per_lang[lang]))
        print(_row("ALL", overall))
        print("confusion (rows gold, columns predicted): " + "  ".join(f"{p[:5]:>5}" for p in LABELS))
        for g in LABELS:
            print(f"  {g:<10}" + "".join(f"{overall.confusion[g][p]:>7}" for p in LABELS))
        out["systems"][name] = {"overall": overall.to_dict(),
                                "languages": {k: v.to_dict() for k, v in per_lang.items()}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", action="append", type=Path, help=f"labelled JSONL (repeatable; default {TEST_SET})")
    ap.add_argument("--llm-url", default="", help="OpenAI-compatible endpoint: also benchmark the llm backend")
    ap.add_argument("--llm-model", default="")
    ap.add_argument("--hf-model", default="", help="HF sequence-classification model: also benchmark the hf backend")
    ap.add_argument("--hf-label-map", default="{}", help='JSON: model label -> reaction label')
    ap.add_argument("--extract", nargs="+", metavar="EXPORT", help="print unlabelled triples from exports and exit")
    args = ap.parse_args()

    if args.extract:
        for path in args.extract:
            for t in extract_triples(path):
                print(json.dumps(t, ensure_ascii=False))
        return
    cfg = ReactionsConfig(llm_base_url=args.llm_url, llm_model=args.llm_model, hf_model=args.hf_model,
                          hf_label_map=json.loads(args.hf_label_map))
    backends = {"rules": make_backend(cfg, "rules")}
    if args.llm_url:
        backends["llm"] = make_backend(cfg, "llm")
    if args.hf_model:
        backends["hf"] = make_backend(cfg, "hf")
    files = args.file or [TEST_SET]
    results = [evaluate_file(f, backends) for f in files]
    print(json.dumps({"benchmark": "reactions", "backends": list(backends), "files": results}, default=str))


if __name__ == "__main__":
    main()
