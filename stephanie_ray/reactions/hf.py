"""The ``hf`` backend: any Hugging Face sequence-classification model, by name or local path.

The model reads a text pair — (the end of the request and answer, the next message) — and its
``id2label`` names are mapped onto the four reaction labels: by ``label_map`` from the config
(model label -> reaction label), else by name when the model's labels already are reaction labels
(case-insensitive). A model label that maps to nothing is an error when the model is loaded (fail
loudly rather than guess). Confidence is the softmax probability of the predicted class. Items
without a next message are not run through the model: their reaction is structural.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import LABELS, Reaction, ReactionError, ReactionInput, structural


class HFBackend:
    name = "hf"

    def __init__(self, model: str, label_map: Mapping[str, str] | None = None, batch_size: int = 16,
                 max_length: int = 256, device: str = "cpu", context_chars: int = 1500):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not model:
            raise ValueError("the hf reaction backend needs reactions.hf_model (a Hugging Face name or local path)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForSequenceClassification.from_pretrained(model).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.context_chars = context_chars
        self.id_to_label = self.map_labels(self.model.config.id2label, label_map or {})
        self.version = f"1:{model}"

    @staticmethod
    def map_labels(id2label: Mapping[Any, str], label_map: Mapping[str, str]) -> dict[int, str]:
        """The model's class index -> reaction label; every class must map to one of LABELS."""
        out, unmapped = {}, []
        for idx, name in id2label.items():
            target = label_map.get(name, label_map.get(str(name).lower(), str(name).lower()))
            if target not in LABELS:
                unmapped.append(str(name))
            else:
                out[int(idx)] = target
        if unmapped:
            raise ValueError(f"model labels {unmapped} map to no reaction label ({', '.join(LABELS)}): "
                             f"set reactions.hf_label_map, e.g. {{{unmapped[0]!r}: 'corrected'}}")
        return out

    def _context(self, it: ReactionInput) -> str:
        n = self.context_chars
        return f"{it.prompt[-n // 3:]}\n\n{it.answer[-n:]}"

    def classify_batch(self, items: Sequence[ReactionInput]) -> list[Reaction | ReactionError]:
        out: list[Reaction | ReactionError | None] = [structural(it) for it in items]
        todo = [i for i, r in enumerate(out) if r is None]
        torch = self.torch
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start:start + self.batch_size]
            enc = self.tokenizer([self._context(items[i]) for i in idx], [items[i].next_text for i in idx],
                                 truncation="longest_first", max_length=self.max_length, padding=True,
                                 return_tensors="pt").to(self.device)
            with torch.no_grad():
                logits = self.model(**enc).logits  # (batch, num_labels)
            probs = torch.softmax(logits.float(), dim=-1)  # (batch, num_labels)
            conf, pred = probs.max(dim=-1)  # (batch,), (batch,)
            for j, i in enumerate(idx):
                label = self.id_to_label[int(pred[j])]
                raw = self.model.config.id2label[int(pred[j])]
                out[i] = Reaction(label, float(conf[j]), f"{self.model.config.name_or_path or 'model'} predicts "
                                                         f"{raw!r} (p={float(conf[j]):.2f})")
        return [r for r in out if r is not None]
