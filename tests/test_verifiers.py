"""Verifiers on plain data: math answer formats, multilingual human reactions, ensemble thresholds, registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from stephanie_ray.reactions import Reaction, ReactionError
from stephanie_ray.training.mathanswer import answers_match, evaluate, last_boxed, normalise
from stephanie_ray.training.verifiers import (VERIFIERS, EnsembleVerifier, ReactionVerifier, Verdict, VerifierConfig,
                                              VerifierSpec, VerifyFailure, VerifyItem, make_verifier,
                                              register_verifier, verify)


# ------------------------------------------------------------------------------------------ math
@pytest.mark.parametrize("text, expected", [
    ("The answer is \\boxed{42}.", "42"),
    ("\\boxed{\\frac{a^{2}}{b_{1}}}", "\\frac{a^{2}}{b_{1}}"),  # nested braces
    ("first \\boxed{1}, then corrected: \\boxed{2}", "2"),  # several boxes: the last
    ("\\fbox{3} and at last \\boxed{4}", "4"),
    ("$\\boxed 7$", "7"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not close the box
    ("no box here: 42", None),
    ("\\boxed{unclosed", None),
    ("答案是 \\boxed{５}", "５"),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


MATCHES = [
    ("\\frac{1}{2}", "0.5"), ("\\dfrac{1}{2}", "1/2"), ("\\tfrac12", "0.5"), ("1/2", "\\frac{1}{2}"),
    ("0.5", "\\frac12"), ("50\\%", "0.5"), ("50\\%", "50"), ("50%", "\\frac{1}{2}"), ("1,234,567", "1234567"),
    ("1{,}000", "1000"), ("1\\,000", "1000"), ("-3", "-3.0"), ("−3", "-3"), ("\\pi", "3.14159265"),
    ("2\\pi", "6.2831853"), ("\\frac{\\pi}{2}", "\\pi/2"), ("\\sqrt{2}", "1.4142136"), ("2\\sqrt{3}", "\\sqrt{12}"),
    ("\\sqrt[3]{27}", "3"), ("2^{10}", "1024"), ("x = 5", "5"), ("$5$", "5"), ("5.", "5"), ("90^\\circ", "90"),
    ("\\text{(B)}", "(b)"), ("3, 2", "2, 3"), ("(1, 2)", "\\left(1,2\\right)"), ("[0, 1)", "[0,1)"),
    ("\\frac{3}{4}", "0.75"), ("1.00001", "1"),  # within the default rel_tol 1e-4
    ("3 \\times 4", "12"), ("10 \\div 4", "2.5"), ("\\mathrm{12}", "12"),
]
MISMATCHES = [
    ("0.5", "50"), ("\\frac{1}{3}", "0.33"), ("-3", "3"), ("(1, 2)", "(2, 1)"), ("(1, 2)", "[1, 2]"),
    ("2", "2, 3"), ("1, 234", "1234"), ("\\frac{1}{0}", "1"), ("x", "y"), ("1.001", "1"), ("\\sqrt{-1}", "1"),
]


@pytest.mark.parametrize("answer, reference", MATCHES)
def test_math_equivalent(answer, reference):
    assert answers_match(answer, reference)


@pytest.mark.parametrize("answer, reference", MISMATCHES)
def test_math_not_equivalent(answer, reference):
    assert not answers_match(answer, reference)


def test_normalise_and_evaluate_by_hand():
    assert normalise("$x = 1{,}000\\%$") == ("1000", True)
    assert evaluate("\\frac{1}{4}+\\frac{1}{4}") == pytest.approx(0.5)
    assert evaluate("2^-1") == pytest.approx(0.5)
    assert evaluate("(-8)^{1/3}") is None  # complex: not a real answer
    assert evaluate("__import__('os')") is None  # never eval
    assert evaluate("10^{100000}") is None


def test_math_verifier_judgements_and_failures():
    v = make_verifier("math")
    items = [
        VerifyItem("1+1?", "So it is \\boxed{2}.", {"reference": "2"}),
        VerifyItem("1+1?", "I think \\boxed{3}", {"expected": 2}),  # reference as a number, other key
        VerifyItem("1+1?", "It is two.", {"reference": "2"}),
        VerifyItem("1+1?", "\\boxed{}", {"reference": "2"}),
        VerifyItem("1+1?", "\\boxed{2}", {}),
        VerifyItem("1+1?", "\\boxed{2}", {"reference": "   "}),
        VerifyItem("half?", "\\boxed{50\\%}", {"reference": "The solution gives \\boxed{\\frac{1}{2}}"}),
    ]
    r = verify(v, items)
    assert r[0] == Verdict(1.0, 1, r[0].reason) and "matches" in r[0].reason
    assert isinstance(r[1], Verdict) and r[1].label == 0 and r[1].p_good == 0.0
    assert r[2] == Verdict(0.0, 0, "no \\boxed{} answer")  # a judgement, not a failure
    assert r[3] == Verdict(0.0, 0, "empty \\boxed{}")
    assert isinstance(r[4], VerifyFailure) and "no reference" in r[4].reason
    assert isinstance(r[5], VerifyFailure)
    assert isinstance(r[6], Verdict) and r[6].label == 1
    tight = make_verifier(VerifierConfig(name="math", math_rel_tol=0.0, math_abs_tol=0.0))
    assert verify(tight, [VerifyItem("", "\\boxed{1.00001}", {"reference": "1"})])[0].label == 0


# ------------------------------------------------------------------------------------------ reaction
def _reaction_items(rows):
    return [VerifyItem(p, a, {"next": n}) for p, a, n in rows]


ACCEPTED = [  # the rules backend, several scripts
    ("How do I sort a list?", "Use sorted(xs).", "Thanks, that works!"),
    ("Wie sortiere ich eine Liste?", "Mit sorted(xs).", "Danke, das funktioniert!"),
    ("Comment trier une liste ?", "Avec sorted(xs).", "Merci, ça marche !"),
    ("¿Cómo ordeno una lista?", "Usa sorted(xs).", "¡Perfecto, gracias!"),
    ("Как отсортировать список?", "Используйте sorted(xs).", "Спасибо, работает!"),
    ("リストをソートするには？", "sorted(xs) を使います。", "ありがとう、うまくいきました"),
]
CORRECTED = [
    ("如何排序列表？", "用 sorted(xs)。", "还是不行"),
    ("리스트를 정렬하려면?", "sorted(xs)를 쓰세요.", "작동하지 않아요"),
    ("Hoe sorteer ik een lijst?", "Met sorted(xs).", "werkt niet"),
    ("How do I sort a list?", "Use sorted(xs).",
     "Traceback (most recent call last):\n  File \"a.py\", line 1\nTypeError: 'int' object is not iterable"),
]


def test_reaction_verifier_multilingual():
    v = make_verifier("reaction")
    for r in verify(v, _reaction_items(ACCEPTED)):
        assert isinstance(r, Verdict) and r.label == 1 and r.p_good > 0.5, r
    for r in verify(v, _reaction_items(CORRECTED)):
        assert isinstance(r, Verdict) and r.label == 0 and r.p_good < 0.5, r


def test_reaction_no_verdict_and_replaced():
    v = make_verifier("reaction")
    rows = [VerifyItem("How do I sort a list?", "Use sorted(xs).", {"next": "Now how do I reverse it?"}),
            VerifyItem("q", "a", {"next": None}),  # end of the conversation
            VerifyItem("q", "a", {"next": None, "regenerated": True}),
            VerifyItem("q", "a", {"next": "Thanks!", "regenerated": True}),  # approved, but not kept
            VerifyItem("q", "a", {}),  # the caller forgot the next message: not "none"
            VerifyItem("q", "a", {"next": 3})]
    r = verify(v, rows)
    assert isinstance(r[0], VerifyFailure) and r[0].reason.startswith("no verdict: continued")
    assert isinstance(r[1], VerifyFailure) and r[1].reason.startswith("no verdict: none")
    assert r[2].label == 0 and r[2].p_good == pytest.approx(0.2)  # ½ - ½ · 0.6 (regeneration's confidence)
    assert r[3].label == 0 and "replaced" in r[3].reason
    assert isinstance(r[4], VerifyFailure) and "'next'" in r[4].reason
    assert isinstance(r[5], VerifyFailure)
    weak = make_verifier(VerifierConfig(name="reaction", reaction_continued="positive", reaction_continued_p_good=0.6))
    (c,) = verify(weak, rows[:1])
    assert c == Verdict(0.6, 1, c.reason)


@dataclass
class FakeBackend:
    replies: list
    name: str = "fake"
    version: str = "0"

    def classify_batch(self, items):
        assert len(items) == len(self.replies)
        return list(self.replies)


def test_reaction_mapping_with_a_fake_backend():
    backend = FakeBackend([Reaction("accepted", 0.8, "ok"), Reaction("corrected", 0.4, "meh"),
                           ReactionError("malformed reply"), Reaction("accepted", 0.2, "maybe")])
    v = ReactionVerifier(backend, min_confidence=0.3)
    r = v.verify_batch([VerifyItem("q", "a", {"next": "x"}) for _ in range(4)])
    assert r[0] == Verdict(0.9, 1, "accepted: ok")  # ½ + ½ · 0.8
    assert r[1] == Verdict(0.3, 0, "corrected: meh")  # ½ - ½ · 0.4
    assert r[2] == VerifyFailure("reaction backend failed: malformed reply")
    assert isinstance(r[3], VerifyFailure) and "min confidence" in r[3].reason


# ------------------------------------------------------------------------------------------ ensemble
def test_ensemble_threshold():
    v = make_verifier(VerifierConfig(name="ensemble", ensemble_threshold=0.6))
    scores = [0.6, 0.59, 1.0, 0.0, None, 1.2, float("nan"), "0.7", True]
    r = verify(v, [VerifyItem("q", "a", {} if s is None else {"ensemble_score": s}) for s in scores])
    assert [x.label for x in r[:4]] == [1, 0, 1, 0] and [x.p_good for x in r[:4]] == [0.6, 0.59, 1.0, 0.0]
    assert all(isinstance(x, VerifyFailure) for x in r[4:])
    assert EnsembleVerifier(score_key="s").verify_batch([VerifyItem("q", "a", {"s": 0.5})])[0].label == 1


# ------------------------------------------------------------------------------------------ registry
def test_registry_and_extension_point():
    assert {"math", "reaction", "ensemble"} <= set(VERIFIERS)
    with pytest.raises(ValueError):
        make_verifier("nope")
    with pytest.raises(ValueError):
        register_verifier(VERIFIERS["math"])

    class Constant:
        name, version = "constant", "1"

        def __init__(self, p):
            self.p = p

        def verify_batch(self, items):
            return [Verdict(self.p, int(self.p >= 0.5), "constant") for _ in items]

    register_verifier(VerifierSpec("constant", lambda cfg: Constant(cfg.options["p"]), "test"))
    try:
        v = make_verifier(VerifierConfig(name="constant", options={"p": 0.7}))
        assert verify(v, [VerifyItem("q", "a")]) == [Verdict(0.7, 1, "constant")]
    finally:
        del VERIFIERS["constant"]
    with pytest.raises(ValueError):
        VerifierConfig(ensemble_threshold=1.5)
    with pytest.raises(ValueError):
        Verdict(0.5, 2, "bad label")
    assert Verdict(0.5, 1, "x").to_dict()["ok"] and not VerifyFailure("y").to_dict()["ok"]
