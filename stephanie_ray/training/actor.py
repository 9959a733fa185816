"""The actor of logprob mode: a Hugging Face causal LM and its tokenizer (load, build offline, warm up, save).

* :func:`load_actor` — any causal LM by hub name or local directory (``AutoModelForCausalLM.from_pretrained``);
  a missing path, a directory that holds no causal LM, or a tokenizer with neither a pad nor an end-of-sequence
  token is one clear :class:`~stephanie_ray.errors.UserError`. A tokenizer without a pad token but with an EOS
  token pads with EOS (as is usual for GPT-2 and Llama tokenizers): padding is never read as text here, every
  batch carries an attention mask and a response mask.
* :func:`build_actor` — the offline default: a byte-level BPE tokenizer trained on the task's texts with the
  ``tokenizers`` library (digits split one by one, so arithmetic sees digits; special tokens ``<|pad|>``,
  ``<|endoftext|>``), and a GPT-2-style model built from a ``GPT2Config`` of the configured size;
  :func:`warm_up` then fits it to (prompt, response) pairs with a short supervised pass (loss on the response
  tokens only), so that sampling starts from something better than noise.
* :func:`save_actor` — ``save_pretrained`` (safetensors) of the model and tokenizer, plus ``meta.json``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import UserError

log = logging.getLogger(__name__)

META_FILE = "meta.json"
PAD, EOS = "<|pad|>", "<|endoftext|>"
# a checkpoint saved from one of these heads was trained to predict the next token (a BertModel was not)
CAUSAL_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")


# ------------------------------------------------------------------------------------------ tokenizer
def train_tokenizer(texts: Sequence[str], vocab_size: int, model_max_length: int) -> Any:
    """A byte-level BPE tokenizer (HF ``tokenizers``) trained on ``texts``, as a ``PreTrainedTokenizerFast``
    with a pad and an EOS token. Digits are pre-split one by one (no merged '12' tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=EOS,
                                   model_max_length=model_max_length, padding_side="left")


def check_tokenizer(tokenizer: Any, name: str) -> Any:
    """Pad with EOS when there is no pad token; neither is an error."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise UserError(f"actor {name}: its tokenizer has neither a pad token nor an end-of-sequence token; "
                            "add one (tokenizer.add_special_tokens) and save it beside the model")
        log.info("actor %s: no pad token, padding with the EOS token %r", name, tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right
    return tokenizer


# ------------------------------------------------------------------------------------------ model
def build_actor(tokenizer: Any, *, layers: int, dim: int, heads: int, context: int, seed: int) -> Any:
    """A GPT-2-style causal LM from a config (no download), sized by the arguments."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if dim % heads:
        raise UserError(f"actor dim {dim} is not a multiple of its {heads} heads")
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=context, n_embd=dim, n_layer=layers, n_head=heads,
                     bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(cfg)


def context_length(model: Any) -> int:
    """The model's maximum sequence length (positions)."""
    c = model.config
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        v = getattr(c, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return 2048


def load_actor(source: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a causal LM from a local directory or a hub name (module docstring)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    p = Path(source).expanduser()
    looks_local = p.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_local and not p.is_dir():
        raise UserError(f"actor path not found: {source}")
    where = str(p) if looks_local else source
    try:
        config = AutoConfig.from_pretrained(where)
    except (OSError, ValueError) as exc:
        raise UserError(f"actor {source}: no model config there ({str(exc).strip().splitlines()[0][:200]})") from None
    archs = list(getattr(config, "architectures", None) or [])
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or (archs and not any(
            a.endswith(CAUSAL_ARCHITECTURES) for a in archs)):
        raise UserError(f"actor {source}: a {config.model_type!r} model ({', '.join(archs) or 'no architecture'}) "
                        f"is not a causal language model (logprob mode samples from the actor)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype or torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"actor {source}: cannot load it ({str(exc).strip().splitlines()[0][:300]})") from None
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise UserError(f"actor {source}: its tokenizer has {len(tokenizer)} tokens, more than the model's "
                        f"{model.get_input_embeddings().num_embeddings} embeddings: they do not belong together")
    check_tokenizer(tokenizer, source)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device), tokenizer


def save_actor(out_dir: Path, model: Any, tokenizer: Any, meta: dict[str, Any]) -> Path:
    """``save_pretrained`` (safetensors) of model and tokenizer, and ``meta.json``; returns the directory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return out_dir


# ------------------------------------------------------------------------------------------ warm-up
def sft_batch(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], max_len: int
              ) -> dict[str, torch.Tensor]:
    """Right-padded prompt + response + EOS, with a mask on the response tokens (and EOS) only; prompts that
    do not fit are cut from the left."""
    eos = tokenizer.eos_token_id
    rows, masks = [], []
    for p, r in zip(prompts, responses):
        pi = tokenizer(p, add_special_tokens=False)["input_ids"]
        ri = tokenizer(r, add_special_tokens=False)["input_ids"][:max_len - 2] + [eos]
        pi = pi[-(max_len - len(ri)):] if len(pi) + len(ri) > max_len else pi
        rows.append(pi + ri)
        masks.append([0] * len(pi) + [1] * len(ri))
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), tokenizer.pad_token_id, dtype=torch.long)
    att = torch.zeros((len(rows), t), dtype=torch.long)
    resp = torch.zeros((len(rows), t), dtype=torch.long)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, :len(r)] = torch.tensor(r)
        att[i, :len(r)] = 1
        resp[i, :len(m)] = torch.tensor(m)
    return {"input_ids": ids, "attention_mask": att, "response_mask": resp}


def warm_up(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, steps: int, batch_size: int, lr: float,
            seed: int, device: str | torch.device = "cpu") -> dict[str, float]:
    """A short supervised pass: mean next-token cross-entropy on the response tokens of random pairs."""
    from .pacs import sequence_logprob

    if not pairs:
        raise UserError("no (prompt, response) pairs to warm the actor up on")
    rng = random.Random(seed)
    max_len = context_length(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 20) * 0.5 * (1 + math.cos(math.pi * i / steps)))
    model.train()
    t0, loss_v = time.perf_counter(), float("nan")
    for _ in range(steps):
        chosen = [pairs[rng.randrange(len(pairs))] for _ in range(batch_size)]
        b = {k: v.to(device) for k, v in sft_batch(tokenizer, [p for p, _ in chosen], [r for _, r in chosen],
                                                   max_len).items()}
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        lp = sequence_logprob(logits, b["input_ids"], b["response_mask"])  # (B,)
        loss = -lp.sum() / b["response_mask"][:, 1:].sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_v = float(loss.detach())
    model.eval()
    return {"warmup_steps": steps, "warmup_loss": round(loss_v, 4), "warmup_seconds": round(time.perf_counter() - t0, 2)}


def cached_actor(root: Path, name: str, settings: dict[str, Any], texts: Sequence[str],
                 pairs: Sequence[tuple[str, str]], lc: Any) -> Path:
    """The offline default actor ``<root>/actors/<name>-<hash of settings>``: built if missing (tokenizer trained on
    ``texts``, GPT-2-style model sized by ``lc``, a ``LogprobConfig``, warmed up on ``pairs``), else reused."""
    import hashlib
    import shutil

    s = {**settings, "layers": lc.actor_layers, "dim": lc.actor_dim, "heads": lc.actor_heads,
         "context": lc.actor_context, "vocab": lc.tokenizer_vocab, "warmup_steps": lc.warmup_steps,
         "warmup_batch": lc.warmup_batch, "warmup_lr": lc.warmup_lr, "seed": lc.actor_seed, "format": 1}
    digest = hashlib.sha256(json.dumps(s, sort_keys=True, default=str).encode()).hexdigest()[:10]
    out = Path(root) / "actors" / f"{name}-{digest}"
    if (out / META_FILE).is_file() and (out / "model.safetensors").is_file():
        return out
    tok = train_tokenizer(texts, lc.tokenizer_vocab, lc.actor_context)
    model = build_actor(tok, layers=lc.actor_layers, dim=lc.actor_dim, heads=lc.actor_heads, context=lc.actor_context,
                        seed=lc.actor_seed)
    stats = warm_up(model, tok, pairs, steps=lc.warmup_steps, batch_size=lc.warmup_batch, lr=lc.warmup_lr,
                    seed=lc.actor_seed) if lc.warmup_steps else {"warmup_steps": 0}
    n = sum(p.numel() for p in model.parameters())
    log.info("default actor %s: %d parameters, %s", out.name, n, stats)
    tmp = out.with_name(f"{out.name}.tmp{time.time_ns()}")
    save_actor(tmp, model, tok, {"name": name, "settings": s, **stats, "parameters": n})
    try:
        tmp.rename(out)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return out
