"""The bundled MiniLM embedder: unit vectors, order-independent batching, exact truncation flags."""

from __future__ import annotations

import numpy as np
import torch

from stephanie_ray.embedding import BUNDLED_MODEL, Embedder, bundled_model_path, from_bytes, to_bytes


def test_bundled_model_embeds_like_the_tokenizer_would():
    e = Embedder(max_length=64, batch_size=2)
    assert e.name == BUNDLED_MODEL and (bundled_model_path() / "config.json").is_file() and e.dim == 384
    texts = ["a short text", "word " * 300, "SQLite job queue with retries", "", "another " * 40]
    vecs, cut = e.encode_with_flags(texts)
    assert vecs.shape == (5, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert cut.tolist() == [False, True, False, False, False]
    # the same as the tokenizer's own truncation and padding, batch by batch
    enc = e.tokenizer([t or " " for t in texts], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        h = e.model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=1).numpy()
    assert np.abs(vecs - ref).max() < 1e-5
    # batch composition does not change a text's vector
    alone = e.encode([texts[2]])
    assert np.abs(alone[0] - vecs[2]).max() < 1e-5
    sims = vecs @ vecs.T
    assert sims[0, 2] < 0.9 and np.allclose(from_bytes(to_bytes(vecs[1])), vecs[1])
