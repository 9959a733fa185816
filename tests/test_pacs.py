"""The PACS objective against values computed by hand, autograd, and invariances (pure torch, no Ray)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stephanie_ray.training.pacs import (PACSObjective, ReferenceSchedule, class_balanced_weights, from_padded,
                                         gradient_decomposition, group_ids_from_sizes, pacs_loss, pacs_objective,
                                         pacs_step, refresh_reference, reward_proxy, rloo_scores, rloo_scores_padded,
                                         sequence_logprob, snapshot_module, to_padded)

LOG2 = math.log(2.0)


def sp(x: float) -> float:  # softplus: BCE-with-logits is softplus(-ψ) for R=1, softplus(ψ) for R=0
    return math.log1p(math.exp(x))


def t(*xs, dtype=torch.float64):
    return torch.tensor(xs, dtype=dtype)


# ------------------------------------------------------------------------------------------ r̂ and ψ
def test_reward_proxy_is_beta_times_difference():
    assert torch.allclose(reward_proxy(t(0.5, 1.0), t(0.2, 1.5), beta=2.0), t(0.6, -1.0))
    assert torch.allclose(reward_proxy(t(0.5, 1.0), None, beta=2.0), t(1.0, 2.0))


def test_group_of_one():
    out = pacs_objective(t(0.5), t(0.2), t(1.0), torch.tensor([7]), PACSObjective(beta=2.0))
    assert out.r_hat.item() == pytest.approx(0.6)
    assert out.psi.item() == pytest.approx(0.6)  # ψ = r̂ alone in its group
    assert out.weights.item() == 1.0
    assert out.loss.item() == pytest.approx(sp(-0.6))  # = 0.43748
    assert out.metrics.critic_grad_norm == 0.0 and out.metrics.coupling_ratio == 0.0


def test_group_of_two():
    out = pacs_objective(t(1.0, -1.0), None, t(1.0, 0.0), torch.tensor([0, 0]))
    assert out.psi.tolist() == pytest.approx([2.0, -2.0])  # 1 - (-1), -1 - 1
    assert out.weights.tolist() == [1.0, 1.0]  # n / (K n_c) = 2 / (2 * 1)
    assert out.loss.item() == pytest.approx(sp(-2.0))  # 0.126928
    # γ = (σ(ψ) - R) / N; a = γ, c_1 = -γ_2, c_2 = -γ_1: a pair always has coupling ratio 1
    g1, g2 = (1 / (1 + math.exp(-2)) - 1) / 2, (1 / (1 + math.exp(2))) / 2
    assert out.actor_grad.tolist() == pytest.approx([g1, g2])
    assert out.critic_grad.tolist() == pytest.approx([-g2, -g1])
    assert out.metrics.coupling_ratio == pytest.approx(1.0)
    assert out.metrics.accuracy == 1.0 and out.metrics.label_rate == 0.5


def test_mixed_size_groups_by_hand():
    # A: r̂ 1,2,3 labels 1,1,0 -> ψ -1.5, 0, 1.5; weights 3/(2*2)=0.75 (pos), 3/(2*1)=1.5 (neg)
    # B: r̂ 0.5 label 0 -> ψ 0.5, w 1.   C: r̂ 0,0 labels 1,1 -> ψ 0,0, w 1,1 (uniform group kept)
    r = t(1.0, 2.0, 3.0, 0.5, 0.0, 0.0)
    y = t(1, 1, 0, 0, 1, 1)
    gid = torch.tensor([10, 10, 10, 3, 5, 5])
    out = pacs_objective(r, None, y, gid)
    assert torch.equal(rloo_scores(r, [10, 10, 10, 3, 5, 5]), out.psi)  # plain lists work too
    assert out.psi.tolist() == pytest.approx([-1.5, 0.0, 1.5, 0.5, 0.0, 0.0])
    assert out.weights.tolist() == pytest.approx([0.75, 0.75, 1.5, 1.0, 1.0, 1.0])
    num = 0.75 * sp(1.5) + 0.75 * LOG2 + 1.5 * sp(1.5) + sp(0.5) + 2 * LOG2
    assert out.loss.item() == pytest.approx(num / 6.0)  # Σw = 6 = N
    group = PACSObjective(reduction="group")
    per_group = [(0.75 * sp(1.5) + 0.75 * LOG2 + 1.5 * sp(1.5)) / 3.0, sp(0.5), LOG2]
    assert pacs_objective(r, None, y, gid, group).loss.item() == pytest.approx(sum(per_group) / 3)
    assert out.metrics.num_groups == 3 and out.metrics.num_mixed_groups == 1
    # accuracy: ψ>0 predicts 1: A: 0,0,1 vs 1,1,0 -> 0/3; B: 1 vs 0 wrong; C: 0,0 vs 1,1 wrong
    assert out.metrics.accuracy == 0.0
    assert out.metrics.entropy == pytest.approx(
        sum(-(p * math.log(p) + (1 - p) * math.log(1 - p)) for p in
            (1 / (1 + math.exp(1.5)), 0.5, 1 / (1 + math.exp(-1.5)), 1 / (1 + math.exp(-0.5)), 0.5, 0.5)) / 6)


@pytest.mark.parametrize("label", [0.0, 1.0])
def test_uniform_groups_keep_and_drop(label):
    r, gid = t(1.0, 2.0, 3.0), torch.tensor([0, 0, 0])
    y = t(label, label, label)
    out = pacs_objective(r, None, y, gid)
    assert out.weights.tolist() == [1.0, 1.0, 1.0]
    psi = [-1.5, 0.0, 1.5]
    expect = sum(sp(-p) if label else sp(p) for p in psi) / 3
    assert out.loss.item() == pytest.approx(expect)
    # at equal r̂ the gradient vanishes: ψ sums to 0 in a group, it cannot all move towards the label
    r0 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    pacs_objective(r0, None, y, gid).loss.backward()
    assert torch.allclose(r0.grad, torch.zeros(3, dtype=torch.float64))
    drop = pacs_objective(r.clone().requires_grad_(True), None, y, gid, PACSObjective(uniform_groups="drop"))
    assert drop.weights.tolist() == [0.0, 0.0, 0.0] and drop.loss.item() == 0.0
    drop.loss.backward()  # still has a graph


def test_class_weights_and_authors_formula():
    y = t(1, 0, 0, 0, 1, 1, 0, 1)
    gid = group_ids_from_sizes([4, 4])
    w = class_balanced_weights(y, gid)
    # group 1: 1 pos 3 neg -> 4/(2*1)=2, 4/(2*3)=2/3; group 2: 3 pos 1 neg -> 2/3, 2
    assert w.tolist() == pytest.approx([2, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2, 2 / 3])
    try:
        from sklearn.utils.class_weight import compute_class_weight
    except ImportError:
        pass
    else:
        for g in range(2):
            chunk = y[gid == g].numpy()
            cw = dict(zip([0.0, 1.0], compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=chunk)))
            assert w[gid == g].tolist() == pytest.approx([cw[v] for v in chunk])
    # equal-size groups: the authors' reshape RLOO + BCEWithLogitsLoss(weight=w) (mean) give our loss
    r = torch.randn(8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rr = r.reshape(-1, 4)
    adv = (rr - (rr.sum(1, keepdim=True) - rr) / 3).reshape(-1)
    ref = torch.nn.BCEWithLogitsLoss(weight=w)(adv, y)
    assert pacs_objective(r, None, y, gid).loss.item() == pytest.approx(ref.item())
    assert class_balanced_weights(y, gid).sum().item() == pytest.approx(8)
    assert pacs_objective(r, None, y, gid, PACSObjective(class_balance=False)).weights.tolist() == [1.0] * 8


def test_bad_inputs_rejected():
    with pytest.raises(ValueError):
        pacs_objective(t(1.0, 2.0), None, t(1.0, 0.5), torch.tensor([0, 0]))  # labels not 0/1
    with pytest.raises(ValueError):
        PACSObjective(beta=0.0)
    with pytest.raises(ValueError):
        PACSObjective(reduction="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        group_ids_from_sizes([2, 0])


# ------------------------------------------------------------------------------------------ flat vs padded
def test_padded_and_flat_agree():
    gen = torch.Generator().manual_seed(3)
    gid = group_ids_from_sizes([1, 4, 2, 7, 3])[torch.randperm(17, generator=gen)]  # mixed sizes, shuffled
    r = torch.randn(17, dtype=torch.float64, generator=gen)
    psi_flat = rloo_scores(r, gid)
    r_pad, mask = to_padded(r, gid, fill=float("nan"))  # garbage in the padding must not leak
    assert mask.sum(1).tolist() == [1, 4, 2, 7, 3]
    psi_pad = rloo_scores_padded(r_pad, mask)
    expect, _ = to_padded(psi_flat, gid)
    assert torch.allclose(psi_pad, expect)
    order = torch.argsort(gid, stable=True)
    assert torch.equal(from_padded(r_pad, mask), r[order])
    # by hand for the loop-free implementation: each ψ_i = r̂_i - mean of the others
    for i in range(17):
        others = r[(gid == gid[i]) & (torch.arange(17) != i)]
        assert psi_flat[i].item() == pytest.approx((r[i] - (others.mean() if len(others) else 0)).item())


def test_permutation_invariance():
    gen = torch.Generator().manual_seed(5)
    gid = group_ids_from_sizes([3, 1, 5, 2])
    s, s_ref = torch.randn(11, dtype=torch.float64, generator=gen), torch.randn(11, dtype=torch.float64, generator=gen)
    y = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=torch.float64)
    perm = torch.randperm(11, generator=gen)  # shuffles groups and within groups
    relabel = torch.tensor([42, -1, 7, 3])[gid]  # ids need not be 0..G-1 nor sorted
    for obj in (PACSObjective(beta=1.5), PACSObjective(reduction="group"), PACSObjective(uniform_groups="drop")):
        a = pacs_objective(s, s_ref, y, gid, obj)
        b = pacs_objective(s[perm], s_ref[perm], y[perm], relabel[perm], obj)
        assert b.loss.item() == pytest.approx(a.loss.item(), rel=1e-12)
        assert torch.allclose(b.psi, a.psi[perm]) and torch.allclose(b.critic_grad, a.critic_grad[perm])
        ma, mb = a.metrics.to_dict(), b.metrics.to_dict()
        assert mb == pytest.approx(ma, rel=1e-9)


def test_sum_reduction_shards_add_up_to_the_whole():
    """What a 2-worker loop needs: Σ over shards of the per-shard sums / global Σw == the 1-worker loss."""
    gen = torch.Generator().manual_seed(1)
    gid = group_ids_from_sizes([2, 3, 4, 1])
    r = torch.randn(10, dtype=torch.float64, generator=gen)
    y = torch.tensor([1, 0, 1, 1, 0, 1, 0, 0, 0, 1], dtype=torch.float64)
    whole = pacs_objective(r, None, y, gid).loss
    summed = PACSObjective(reduction="sum")
    shards = [pacs_objective(r[m], None, y[m], gid[m], summed) for m in (gid < 2, gid >= 2)]  # whole groups
    total = sum(o.loss for o in shards) / sum(o.weight_sum for o in shards)
    assert total.item() == pytest.approx(whole.item())


# ------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("obj", [PACSObjective(beta=0.7), PACSObjective(reduction="group"),
                                 PACSObjective(reduction="sum", uniform_groups="drop"),
                                 PACSObjective(class_balance=False)])
def test_gradcheck_wrt_s_theta(obj):
    gen = torch.Generator().manual_seed(2)
    gid = group_ids_from_sizes([1, 3, 2, 4])
    s = torch.randn(10, dtype=torch.float64, generator=gen, requires_grad=True)
    s_ref = torch.randn(10, dtype=torch.float64, generator=gen)
    y = torch.tensor([1, 1, 0, 0, 1, 1, 0, 1, 1, 1], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: pacs_objective(x, s_ref, y, gid, obj).loss, (s,))


def test_decomposition_sums_to_autograd_gradient():
    gen = torch.Generator().manual_seed(4)
    gid = group_ids_from_sizes([1, 3, 5, 2])
    s = torch.randn(11, dtype=torch.float64, generator=gen, requires_grad=True)
    y = (torch.rand(11, generator=gen) > 0.5).to(torch.float64)
    obj = PACSObjective(beta=1.7)
    out = pacs_objective(s, None, y, gid, obj)
    (grad,) = torch.autograd.grad(out.loss, s)
    assert torch.allclose(out.actor_grad + out.critic_grad, grad)
    for g in range(4):  # within a group of two or more the two parts cancel
        m = gid == g
        if m.sum() > 1:
            assert (out.actor_grad[m] + out.critic_grad[m]).sum().item() == pytest.approx(0.0, abs=1e-12)
    a, c = gradient_decomposition(t(0.1, -0.2, 0.4), torch.tensor([0, 0, 0]))
    assert c.tolist() == pytest.approx([-0.1, -0.25, 0.05])  # -(sum of the others)/2
    # the ratio's bounds for groups of 3: 1 for a common-mode γ, 1/(n-1) = ½ for a zero-sum γ
    for gamma, ratio in ((t(0.3, 0.3, 0.3), 1.0), (t(0.2, -0.5, 0.3), 0.5)):
        a, c = gradient_decomposition(gamma, torch.tensor([0, 0, 0]))
        assert (c.norm() / a.norm()).item() == pytest.approx(ratio)
    assert out.metrics.coupling_ratio == pytest.approx(
        (out.critic_grad.norm() / out.actor_grad.norm()).item())


# ------------------------------------------------------------------------------------------ sequence_logprob
def test_sequence_logprob_masks_prompt_and_padding():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, 11, (3, 7), generator=gen)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1],   # left-padded prompt, response at the end
                         [0, 0, 1, 1, 1, 0, 0],   # right padding after the response
                         [0, 1, 0, 0, 0, 0, 0]])  # a one-token response
    manual_sum, counts = [], []
    for b in range(3):
        total, n = 0.0, 0
        for pos in range(7):
            if mask[b, pos]:
                total += torch.log_softmax(logits[b, pos - 1], -1)[ids[b, pos]].item()
                n += 1
        manual_sum.append(total)
        counts.append(n)
    assert sequence_logprob(logits, ids, mask).tolist() == pytest.approx(manual_sum)
    assert sequence_logprob(logits, ids, mask, normalise=True).tolist() == pytest.approx(
        [s / n for s, n in zip(manual_sum, counts)])
    # logits at positions that predict no response token change nothing
    poked = logits.clone()
    poked[0, :2] += 100.0
    poked[1, 4:] -= 50.0
    assert torch.allclose(sequence_logprob(poked, ids, mask), sequence_logprob(logits, ids, mask))
    with pytest.raises(ValueError):
        sequence_logprob(logits, ids, torch.ones_like(mask))  # position 0 cannot be scored
    with pytest.raises(ValueError):
        sequence_logprob(logits, ids, torch.zeros_like(mask), normalise=True)


def test_sequence_logprob_into_objective_has_gradients():
    logits = torch.randn(4, 5, 6, requires_grad=True)
    ids = torch.randint(0, 6, (4, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1]] * 4)
    s = sequence_logprob(logits, ids, mask)
    out = pacs_objective(s, s.detach() - 0.1 * torch.arange(4.0), torch.tensor([1.0, 0, 1, 0]),
                         torch.tensor([0, 0, 1, 1]))
    out.loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[:, 0].abs().sum() == 0  # logits at position 0 predict a prompt token


# ------------------------------------------------------------------------------------------ steps
def _data(n_groups=6, size=4, dim=5, seed=123):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_groups * size, dim, generator=gen)
    y = (x[:, 0] + 0.3 * torch.randn(n_groups * size, generator=gen) > 0).to(torch.float32)
    return x, y, group_ids_from_sizes([size] * n_groups)


def _trajectory(seed: int, reset_every: int, steps: int = 6) -> list[float]:
    torch.manual_seed(seed)
    critic = torch.nn.Linear(5, 1)
    opt = torch.optim.Adam(critic.parameters(), lr=0.05)
    x, y, gid = _data()
    sched, ref, losses = ReferenceSchedule(reset_every=reset_every), None, []
    for step in range(steps):
        ref, _ = sched.maybe_refresh(step, critic, ref)
        with torch.no_grad():
            s_ref = ref(x).squeeze(-1)
        res = pacs_step(critic(x).squeeze(-1), s_ref, y, gid, PACSObjective(beta=1.0), optimizer=opt)
        assert res.ok and res.applied
        losses.append(res.metrics.loss)
    return losses


def test_same_seed_same_data_same_trajectory():
    a, b = _trajectory(0, reset_every=3), _trajectory(0, reset_every=3)
    assert a == b  # bit-identical
    assert len(set(a)) > 1 and _trajectory(1, reset_every=3) != a


def test_reset_every_one_is_authors_reference():
    # the reference is the policy before the update: r̂ = ψ = 0, the loss is log 2, the gradient ½ - R drives it
    assert _trajectory(0, reset_every=1, steps=3) == pytest.approx([LOG2] * 3, abs=1e-7)


def test_pacs_step_rejects_nan_and_inf():
    critic = torch.nn.Linear(5, 1)
    opt = torch.optim.SGD(critic.parameters(), lr=0.1)
    before = [p.detach().clone() for p in critic.parameters()]
    x, y, gid = _data()
    x[3, 2] = float("nan")  # an injected NaN in one input
    res = pacs_step(critic(x).squeeze(-1), None, y, gid, optimizer=opt)
    assert not res.ok and not res.applied and "non-finite loss" in res.reason
    assert all(p.grad is None for p in critic.parameters())
    assert all(torch.equal(p, q) for p, q in zip(critic.parameters(), before))
    # finite loss, infinite gradient: d sqrt(p)/dp at p = 0
    p0 = torch.zeros(1, requires_grad=True)
    s = torch.sqrt(p0) + torch.tensor([0.3, -0.2])
    res = pacs_step(s, None, torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), params=[p0])
    assert not res.ok and "gradient" in res.reason and p0.grad is None
    # and a clean step goes through, with the parameter-space split reported
    x, y, gid = _data()
    res = pacs_step(critic(x).squeeze(-1), None, y, gid, optimizer=opt, decompose_params=True, max_grad_norm=1.0)
    assert res.ok and res.applied and res.param_actor_grad_norm > 0 and res.param_critic_grad_norm > 0
    assert not all(torch.equal(p, q) for p, q in zip(critic.parameters(), before))
    assert set(res.to_dict()) >= {"ok", "grad_norm", "loss", "coupling_ratio"}


# ------------------------------------------------------------------------------------------ reference
def test_reference_schedule_and_snapshot():
    policy = torch.nn.Linear(3, 2)
    sched = ReferenceSchedule(reset_every=3)
    ref, refreshed = None, []
    for step in range(8):
        ref, did = sched.maybe_refresh(step, policy, ref)
        refreshed.append(did)
    assert [i for i, d in enumerate(refreshed) if d] == [0, 3, 6]
    assert all(not p.requires_grad for p in ref.parameters()) and not ref.training
    with torch.no_grad():
        policy.weight.add_(1.0)
    assert not torch.equal(ref.weight, policy.weight)  # a copy, not a view
    ptr = ref.weight.data_ptr()
    refresh_reference(ref, policy)
    assert torch.equal(ref.weight, policy.weight) and ref.weight.data_ptr() == ptr  # in place
    sched.force()
    assert sched.due(7)
    again = ReferenceSchedule.from_state_dict(sched.state_dict())
    assert again.due(7) and again.last_refresh == 6
    assert snapshot_module(policy) is not policy
    with pytest.raises(ValueError):
        ReferenceSchedule(reset_every=0)


def test_pacs_loss_direct():
    loss, wsum = pacs_loss(t(0.0, 0.0), t(1.0, 0.0), torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(LOG2) and wsum.item() == 2.0
