"""The PACS critic: a score ``s_θ(prompt, response)`` whose sigmoid, calibrated, is P(the response is good).

Two backbones (``critic.backbone``):

* ``frozen`` (default, CPU): sentence embeddings of the prompt (with its context) and of the response from a
  frozen encoder (the bundled all-MiniLM-L6-v2, or any HF encoder), combined as
  ``[e_p, e_r, e_p ⊙ e_r, |e_p − e_r|]`` (4·d features, the usual pair features of sentence-pair
  classifiers) and scored by a small MLP (:class:`FrozenCritic`). The embeddings are computed once per
  dataset version and encoder and cached beside the dataset (:func:`cached_embeddings`, safetensors).
* ``finetune``: the encoder itself (:class:`FinetuneCritic`, any HF encoder name or path) reads the pair
  ``prompt [SEP] response``, mean-pools its last hidden states and a linear head gives the score.
  Dropout is kept off so that a step is a deterministic function of the weights and the batch (a resumed
  run repeats the same steps).

A **model version** is a directory: ``meta.json`` (config, metrics, dataset version, encoder),
``model.safetensors`` (the head, or with ``finetune`` the head) and with ``finetune`` the encoder and its
tokenizer under ``encoder/`` (``save_pretrained``, safetensors), plus ``calibrator.json`` when the
validation split allowed a calibration. Never a pickle. :func:`load_critic` reads it back and fails with
one clear line when something is missing or corrupt.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UserError

META_FILE = "meta.json"
WEIGHTS_FILE = "model.safetensors"
CALIBRATOR_FILE = "calibrator.json"
ENCODER_DIR = "encoder"
KIND = "pacs_critic"
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------ models
def pair_features(e_p: torch.Tensor, e_r: torch.Tensor) -> torch.Tensor:
    """(N, d), (N, d) -> (N, 4d): [e_p, e_r, e_p ⊙ e_r, |e_p − e_r|]."""
    return torch.cat([e_p, e_r, e_p * e_r, (e_p - e_r).abs()], dim=-1)


class FrozenCritic(nn.Module):
    """An MLP on pair features of frozen sentence embeddings: (N, 4d) -> (N,) scores."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.dim, self.hidden = dim, hidden
        if hidden:
            self.net = nn.Sequential(nn.Linear(4 * dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        else:
            self.net = nn.Sequential(nn.Linear(4 * dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # (N,)


class FinetuneCritic(nn.Module):
    """An HF encoder over the (prompt, response) pair, mean-pooled, and a linear head: -> (N,) scores."""

    def __init__(self, source: str):
        super().__init__()
        from transformers import AutoConfig, AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        config = AutoConfig.from_pretrained(source)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout"):
            if hasattr(config, name):
                setattr(config, name, 0.0)  # deterministic steps (module docstring)
        self.encoder = AutoModel.from_pretrained(source, config=config)
        self.head = nn.Linear(int(config.hidden_size), 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (N, T, H)
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (N, T, 1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (N, H)
        return self.head(pooled).squeeze(-1)  # (N,)


def tokenize_pairs(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], max_length: int
                   ) -> dict[str, torch.Tensor]:
    enc = tokenizer(list(prompts), list(responses), truncation="longest_first", max_length=max_length,
                    padding=True, return_tensors="pt", return_token_type_ids=False)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


# ------------------------------------------------------------------------------------------ embeddings
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:60] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]


def cached_embeddings(cache_dir: Path, row_ids: np.ndarray, prompts: Sequence[str], responses: Sequence[str],
                      embedding_cfg: Any, encoder: str = "") -> tuple[Path, int]:
    """Embed every row's prompt and response once per (dataset, encoder, max_length); (cache file, dim).

    The file (safetensors) holds ``row_id`` (N,), ``prompt`` and ``response`` (N, d) float32 unit vectors,
    with the encoder and max_length in its metadata; a file made for other rows or settings is rebuilt."""
    from safetensors.numpy import load_file, save_file

    from ..embedding import Embedder, resolve_model

    model = encoder or embedding_cfg.model
    _, name = resolve_model(model)
    path = cache_dir / f"embeddings_{_slug(name)}_{embedding_cfg.max_length}.safetensors"
    ids = np.asarray(row_ids, dtype=np.int64)
    if path.is_file():
        try:
            cached = load_file(str(path))
            if np.array_equal(cached["row_id"], ids):
                return path, int(cached["prompt"].shape[1])
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale: rebuilt below
    emb = Embedder.from_config(_with_model(embedding_cfg, model))
    e_p = emb.encode(list(prompts))
    e_r = emb.encode(list(responses))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"row_id": ids, "prompt": e_p.astype(np.float32), "response": e_r.astype(np.float32)}, str(tmp),
              metadata={"encoder": name, "max_length": str(embedding_cfg.max_length)})
    tmp.replace(path)
    return path, int(e_p.shape[1])


def _with_model(embedding_cfg: Any, model: str) -> Any:
    import dataclasses

    return dataclasses.replace(embedding_cfg, model=model) if model != embedding_cfg.model else embedding_cfg


# ------------------------------------------------------------------------------------------ versions
@dataclass
class LoadedCritic:
    """A model version ready to score (prompt, response) pairs."""

    path: Path
    meta: dict[str, Any]
    model: nn.Module
    calibrator: Any | None  # calibration.Calibrator, None when the validation split could not calibrate
    tokenizer: Any | None = None
    embedder: Any | None = None

    @property
    def backbone(self) -> str:
        return str(self.meta["backbone"])

    @torch.no_grad()
    def logits(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(prompts), batch_size):
            p, r = prompts[i:i + batch_size], responses[i:i + batch_size]
            if self.backbone == "frozen":
                x = pair_features(torch.from_numpy(self.embedder.encode(list(p))),
                                  torch.from_numpy(self.embedder.encode(list(r))))
                out.append(self.model(x).float().numpy())
            else:
                enc = tokenize_pairs(self.tokenizer, p, r, int(self.meta["max_length"]))
                out.append(self.model(**enc).float().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def p_good(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        s = self.logits(prompts, responses)
        if self.calibrator is None:
            return 1.0 / (1.0 + np.exp(-s.astype(np.float64)))
        return np.clip(self.calibrator.transform(s), 0.0, 1.0)


def save_version(out_dir: Path, model: nn.Module, meta: dict[str, Any], calibrator: Any | None,
                 tokenizer: Any | None = None) -> Path:
    """Write a model version directory (module docstring); returns it."""
    from safetensors.torch import save_file

    from .calibration import save_calibrator

    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model, FinetuneCritic):
        model.encoder.save_pretrained(out_dir / ENCODER_DIR, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(out_dir / ENCODER_DIR)
        tensors = {f"head.{k}": v for k, v in model.head.state_dict().items()}
    else:
        tensors = dict(model.state_dict())
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(out_dir / WEIGHTS_FILE))
    if calibrator is not None:
        save_calibrator(calibrator, out_dir / CALIBRATOR_FILE)
    meta = {"format": FORMAT_VERSION, "kind": KIND, **meta, "calibrated": calibrator is not None}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return out_dir


def load_critic(path: str | Path, embedding_cfg: Any | None = None) -> LoadedCritic:
    """Read a model version directory; anything missing or corrupt is one clear :class:`UserError` line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .calibration import load_calibrator

    p = Path(path)
    where = f"critic model {p}"
    try:
        meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{where}: no {META_FILE} (not a model version, or it was deleted)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{where}: corrupt {META_FILE}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND or meta.get("backbone") not in ("frozen", "finetune"):
        raise UserError(f"{where}: {META_FILE} does not describe a PACS critic")
    try:
        state = load_file(str(p / WEIGHTS_FILE))
    except FileNotFoundError:
        raise UserError(f"{where}: {WEIGHTS_FILE} is missing") from None
    except (OSError, SafetensorError, ValueError) as exc:
        raise UserError(f"{where}: corrupt {WEIGHTS_FILE}: {str(exc).splitlines()[0]}") from None
    calibrator = None
    if meta.get("calibrated"):
        try:
            calibrator = load_calibrator(p / CALIBRATOR_FILE)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{where}: cannot read {CALIBRATOR_FILE}: {exc}") from None
    tokenizer = embedder = None
    try:
        if meta["backbone"] == "frozen":
            model: nn.Module = FrozenCritic(int(meta["dim"]), int(meta["hidden"]))
            model.load_state_dict(state)
            from ..config import EmbeddingConfig
            from ..embedding import Embedder

            import dataclasses

            base = dataclasses.replace(embedding_cfg or EmbeddingConfig(), max_length=int(meta["max_length"]))
            embedder = Embedder.from_config(_with_model(base, str(meta.get("encoder_source", ""))))
        else:
            from transformers import AutoTokenizer

            model = FinetuneCritic(str(p / ENCODER_DIR))
            model.head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
            tokenizer = AutoTokenizer.from_pretrained(str(p / ENCODER_DIR))
    except (RuntimeError, KeyError, OSError, ValueError) as exc:
        raise UserError(f"{where}: weights do not fit its meta.json: {str(exc).splitlines()[0]}") from None
    model.eval()
    return LoadedCritic(p, meta, model, calibrator, tokenizer, embedder)


def resolve_version(session: Any, ref: str | int | None) -> tuple[int | None, Path]:
    """(version number or None, directory) from a version number, a directory, or None/'' = the newest."""
    from sqlalchemy import select

    from ..db.models import ModelVersion

    if ref not in (None, "") and not str(ref).isdigit():
        return None, Path(str(ref))
    q = select(ModelVersion).where(ModelVersion.kind == KIND)
    q = q.where(ModelVersion.version == int(ref)) if ref not in (None, "") else q.order_by(ModelVersion.version.desc())
    mv = session.scalars(q).first()
    if mv is None:
        raise UserError(f"no critic model version {ref}" if ref not in (None, "")
                        else "no trained critic yet (stephanie train --mode critic)")
    return mv.version, Path(mv.path)
