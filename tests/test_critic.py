"""The critic without Ray: step schedule, checkpoint state without pickle, model versions (save, load, corrupt),
evaluation and cross-fitted calibration, and the finetune backbone on the bundled MiniLM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stephanie_ray.errors import UserError
from stephanie_ray.training.critic import FinetuneCritic, FrozenCritic, load_critic, save_version, tokenize_pairs
from stephanie_ray.training.evaluate import evaluate
from stephanie_ray.training.pacs import PACSObjective, pacs_step
from stephanie_ray.training.train_loop import load_optimizer, optimizer_tensors, step_groups


def test_step_schedule_covers_every_group_once_per_epoch_whatever_the_workers():
    ids = list(range(100, 123))
    epoch = [g for t in range(1, 4) for g in step_groups(ids, t, 8, seed=0)]  # ceil(23 / 8) = 3 steps
    assert sorted(epoch) == ids
    assert step_groups(ids, 4, 8, 0) != step_groups(ids, 1, 8, 0)  # a new permutation next epoch
    assert step_groups(list(reversed(ids)), 2, 8, 0) == step_groups(ids, 2, 8, 0)  # order of discovery is irrelevant


def test_optimizer_state_round_trips_without_pickle():
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    m = FrozenCritic(4, 3)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m(torch.randn(5, 16)).sum().backward()
    opt.step()
    tensors, extra = optimizer_tensors(opt)
    json.dumps(extra)  # the non-tensor part is plain JSON
    save_file({k: v.contiguous() for k, v in tensors.items()}, "/tmp/_opt_test.safetensors")
    opt2 = torch.optim.AdamW(m.parameters(), lr=1e-2)
    load_optimizer(opt2, load_file("/tmp/_opt_test.safetensors"), json.loads(json.dumps(extra)))
    for a, b in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values()):
        assert all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)


def test_model_version_round_trip_and_corrupt_files(tmp_path):
    from stephanie_ray.training.calibration import PlattScaler

    torch.manual_seed(0)
    model = FrozenCritic(384, 8)
    cal = PlattScaler().fit(np.array([-1.0, 0.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    path = save_version(tmp_path / "v1", model, {"backbone": "frozen", "dim": 384, "hidden": 8, "max_length": 64,
                                                  "encoder_source": "", "version": 1}, cal)
    assert sorted(p.name for p in path.iterdir()) == ["calibrator.json", "meta.json", "model.safetensors"]
    critic = load_critic(path)
    p = critic.p_good(["Wie koche ich Reis?", "如何煮米饭？"], ["Mit Wasser, 20 Minuten.", "加水煮二十分钟。"])
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="corrupt model.safetensors"):
        load_critic(path)
    (path / "meta.json").unlink()
    with pytest.raises(UserError, match="no meta.json"):
        load_critic(path)
    with pytest.raises(UserError, match="no meta.json"):
        load_critic(tmp_path / "missing")


def test_evaluate_reports_raw_and_cross_fitted_calibrated_figures():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = 3.0 * (y - 0.5) + rng.normal(0, 1.5, 400) + 4.0  # informative but badly calibrated (shifted)
    ev, cal = evaluate(y, s, np.arange(400) // 2)
    assert ev["raw"]["auc"] > 0.8 and ev["raw"]["ece"] > 0.2
    assert ev["calibrated"]["ece"] < 0.1 and ev["calibrated"]["brier"] < ev["raw"]["brier"] and cal is not None
    ev, cal = evaluate(np.ones(10), np.zeros(10), np.arange(10))
    assert ev["raw"]["auc"] is None and ev["calibrated"] is None and "single class" in ev["note"] and cal is None


@pytest.mark.slow
def test_finetune_backbone_takes_pacs_steps_on_the_bundled_minilm(tmp_path):
    from stephanie_ray.embedding import bundled_model_path
    from transformers import AutoTokenizer

    src = str(bundled_model_path())
    torch.manual_seed(0)
    model = FinetuneCritic(src)
    tok = AutoTokenizer.from_pretrained(src)
    enc = tokenize_pairs(tok, ["What is 2+2?"] * 4, ["4", "5", "four", "22"], 32)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    gids = torch.tensor([7, 7, 7, 7])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    before = model.encoder.embeddings.word_embeddings.weight.detach().clone()
    gaps = []
    for _ in range(3):
        s = model(**enc)
        res = pacs_step(s, s.detach(), labels, gids, PACSObjective(), optimizer=opt)
        assert res.ok and res.applied
        gaps.append(float((s[labels == 1].mean() - s[labels == 0].mean()).detach()))
    assert not torch.equal(before, model.encoder.embeddings.word_embeddings.weight)  # the encoder itself learns
    assert gaps[-1] > gaps[0]  # good answers pulled above bad ones
    path = save_version(tmp_path / "ft", model, {"backbone": "finetune", "hidden": 0, "max_length": 32,
                                                  "encoder_source": src}, None, tok)
    critic = load_critic(path)
    with torch.no_grad():
        assert np.allclose(critic.logits(["What is 2+2?"] * 4, ["4", "5", "four", "22"]), model(**enc).numpy(),
                           atol=1e-5)
