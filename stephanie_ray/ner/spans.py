"""Type-aware span embeddings: a middle layer's hidden states (or a sub-module's output) pooled over a span.

The paper's finding is that an entity's *type* is most readable in a language model's middle layers (it
takes block 17 of LLaMA-3.1-8B, at the value projection, at the span's last token); the last layers
have moved on to predicting the next token. Here any Hugging Face model works:

* ``layer`` is a hidden-states index (0: the embeddings, *i*: block *i*'s output), read with a forward hook
  on that block — the forward pass stops there (the blocks above it are never run: a middle layer costs
  about half a full pass); ``submodule`` (a dotted path such as ``encoder.layer.2.attention.self.value`` or
  ``model.layers.17.self_attn.v_proj``) takes that module's output instead, as the paper does.
* ``pooling``: ``last`` (the span's last token, as the paper) or ``mean`` over the span's tokens.
* **One forward pass per text for all its spans**: a text is tokenised once (with character offsets),
  every span is mapped to its tokens, and the text goes through the model once; a text longer than
  ``max_length`` tokens is read in windows overlapping by ``window_overlap`` tokens, each span taken from
  the window where it sits most centrally, and only windows holding a span are run. Windows of many
  texts are batched together, sorted by length.

A span no token covers (only characters the tokenizer drops) gets no vector: ``embed`` returns NaN rows
for it and callers count it as unembeddable. A query is embedded as a text that is one whole span.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..embedding import resolve_model
from ..errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpanSettings:
    model: str = ""
    layer: int = 4
    submodule: str = ""
    pooling: str = "mean"
    max_length: int = 256
    window_overlap: int = 64
    batch_size: int = 32
    device: str = "cpu"
    num_threads: int = 0

    @classmethod
    def from_config(cls, ncfg: Any) -> SpanSettings:
        return cls(ncfg.model, ncfg.layer, ncfg.submodule, ncfg.pooling, ncfg.max_length, ncfg.window_overlap,
                   ncfg.batch_size, ncfg.device, ncfg.num_threads)

    @property
    def signature(self) -> str:
        """What makes two stored vectors comparable: model, where they are read, how spans are pooled."""
        _, name = resolve_model(self.model)
        where = f"sub={self.submodule}" if self.submodule else f"layer={self.layer}"
        return f"{name}|{where}|pool={self.pooling}|ctx={self.max_length}"


class _Stop(Exception):
    """Raised by the capture hook: the layers above the one read are not needed."""


def _blocks(model: Any) -> Any:
    """The model's list of transformer blocks: the ModuleList as long as ``num_hidden_layers``."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    for _name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n:
            return mod
    return None


class SpanEmbedder:
    _cache: dict[SpanSettings, SpanEmbedder] = {}
    _lock = threading.Lock()

    def __init__(self, settings: SpanSettings):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        self.settings = settings
        if settings.num_threads:
            torch.set_num_threads(settings.num_threads)
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.source, self.name = resolve_model(settings.model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source, use_fast=True)
            self.model = AutoModel.from_pretrained(self.source, torch_dtype="auto").to(device).eval()
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load span model {self.source!r}: {exc}") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise UserError(f"span model {self.source!r} has no fast tokenizer (character offsets are needed)")
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0
        # the special tokens the model was trained with around a text: [CLS] .. [SEP] for BERT, <s> .. for LLaMA
        bare = self._ids("hello")
        full = self.tokenizer("hello", add_special_tokens=True)["input_ids"]
        at = next((k for k in range(len(full) - len(bare) + 1) if full[k: k + len(bare)] == bare), None)
        if not bare or at is None:
            raise UserError(f"span model {self.source!r}: cannot locate the text among its special tokens")
        self.prefix, self.suffix = full[:at], full[at + len(bare):]
        self.window = settings.max_length - len(self.prefix) - len(self.suffix)
        if self.window < 4:
            raise UserError(f"ner.max_length {settings.max_length} leaves no room for text")
        self._captured: Any = None
        self.target = self._capture_module()
        self.target.register_forward_hook(self._hook)
        self.dim = int(self._forward([[*self.prefix, *self._ids("a")[:1], *self.suffix]]).shape[-1])

    @classmethod
    def get(cls, settings: SpanSettings) -> SpanEmbedder:
        """One shared instance per settings in this process (a Ray actor loads it once)."""
        with cls._lock:
            if settings not in cls._cache:
                cls._cache[settings] = cls(settings)
            return cls._cache[settings]

    @property
    def signature(self) -> str:
        return self.settings.signature

    def _capture_module(self) -> Any:
        s = self.settings
        if s.submodule:
            try:
                return self.model.get_submodule(s.submodule)
            except AttributeError:
                raise UserError(f"span model {self.name!r} has no sub-module {s.submodule!r} (e.g. "
                                f"{', '.join(n for n, _ in list(self.model.named_modules())[1:6])} ...)") from None
        blocks = _blocks(self.model)
        n = len(blocks) if blocks is not None else 0
        if not 0 <= s.layer <= n:
            raise UserError(f"ner.layer {s.layer} is out of range for {self.name!r} (0..{n})")
        if s.layer == 0:
            return self.model.get_input_embeddings() if not hasattr(self.model, "embeddings") else self.model.embeddings
        if blocks is None:
            raise UserError(f"cannot find the transformer blocks of {self.name!r}; set ner.submodule instead")
        return blocks[s.layer - 1]

    def _hook(self, _module: Any, _inputs: Any, output: Any) -> None:
        self._captured = output[0] if isinstance(output, (tuple, list)) else output
        raise _Stop

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _forward(self, seqs: list[list[int]]) -> Any:
        """(batch, tokens, dim) float32 tensor of the captured layer for token-id sequences."""
        import torch

        longest = max(len(q) for q in seqs)
        ids = torch.full((len(seqs), longest), self.pad_id, dtype=torch.long)  # (batch, tokens)
        mask = torch.zeros((len(seqs), longest), dtype=torch.long)
        for j, q in enumerate(seqs):
            ids[j, : len(q)] = torch.tensor(q, dtype=torch.long)
            mask[j, : len(q)] = 1
        self._captured = None
        with torch.inference_mode():
            try:
                self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
            except _Stop:
                pass
        if self._captured is None:
            raise RuntimeError(f"the capture hook on {self.settings.submodule or f'layer {self.settings.layer}'} "
                               "did not run")
        return self._captured.float()

    def embed(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[np.ndarray]:
        """Per text, a float32 (n_spans, dim) array: each span's pooled representation (NaN rows: no token)."""
        import torch

        if len(texts) != len(spans):
            raise ValueError("texts and spans differ in length")
        out = [np.full((len(sp), self.dim), np.nan, dtype=np.float32) for sp in spans]
        # (text index, window start token, token ids, [(span index, first token, last token)])
        windows: list[tuple[int, int, list[int], list[tuple[int, int, int]]]] = []
        W, step = self.window, self.window - self.settings.window_overlap
        for i, (text, sp) in enumerate(zip(texts, spans)):
            if not sp or not text:
                continue
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = enc["input_ids"]
            if not ids:
                continue
            offs = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
            starts, ends = offs[:, 0], offs[:, 1]
            ends_max = np.maximum.accumulate(ends)  # monotone for searchsorted
            n = len(ids)
            starts_w = list(range(0, max(1, n - self.settings.window_overlap), step)) if n > W else [0]
            by_window: dict[int, list[tuple[int, int, int]]] = {}
            for k, (a, b) in enumerate(sp):
                t0 = int(np.searchsorted(ends_max, a, side="right"))  # first token ending after a
                t1 = int(np.searchsorted(starts, b, side="left")) - 1  # last token starting before b
                if t0 > t1 or t0 >= n:
                    continue
                if n <= W:
                    w = 0
                else:  # the window where the span sits most centrally (its last token must be inside)
                    best, w = None, 0
                    for ws in starts_w:
                        we = min(n, ws + W)
                        if ws <= t1 < we:
                            margin = min(max(t0, ws) - ws, we - 1 - t1)
                            if best is None or margin > best:
                                best, w = margin, ws
                by_window.setdefault(w, []).append((k, max(t0, w), t1))
            for ws, items in by_window.items():
                windows.append((i, ws, ids[ws: ws + W], items))
        windows.sort(key=lambda w: len(w[2]))
        bs = self.settings.batch_size
        p = len(self.prefix)
        for start in range(0, len(windows), bs):
            batch = windows[start: start + bs]
            hidden = self._forward([[*self.prefix, *w[2], *self.suffix] for w in batch])  # (batch, tokens, dim)
            for j, (i, ws, _ids, items) in enumerate(batch):
                for k, t0, t1 in items:
                    a, b = p + t0 - ws, p + t1 - ws
                    if self.settings.pooling == "last":
                        vec = hidden[j, b]
                    else:
                        vec = hidden[j, a: b + 1].mean(dim=0)
                    out[i][k] = vec.cpu().numpy()
        del torch
        return out

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """(n, dim): each query as one whole span. An empty query, or one no token covers, raises UserError."""
        texts, spans = [], []
        for q in queries:
            q = q if isinstance(q, str) else ""
            a = len(q) - len(q.lstrip())
            b = len(q.rstrip())
            if b <= a:
                raise UserError("empty query: give a type description such as 'Python web framework'")
            texts.append(q)
            spans.append([(a, b)])
        vecs = np.stack([v[0] for v in self.embed(texts, spans)])
        bad = ~np.isfinite(vecs).all(axis=1)
        if bad.any():
            raise UserError(f"the query {queries[int(np.argmax(bad))]!r} embeds to nothing (no token of the span "
                            "model covers it)")
        return vecs
