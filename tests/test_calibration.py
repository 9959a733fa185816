"""Calibration metrics and calibrators against hand-computed values (and scikit-learn when it is installed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stephanie_ray.training.calibration import (CALIBRATORS, DEFAULT_CALIBRATOR, IsotonicCalibrator, PlattScaler,
                                                auc, average_ranks, brier, calibration_report, ece, load_calibrator,
                                                make_calibrator, pav, reliability_bins, save_calibrator)

try:
    import sklearn.metrics as skm
    from sklearn.isotonic import IsotonicRegression
except ImportError:  # not a dependency: the comparisons are skipped
    skm = None


def test_auc_by_hand_and_ties():
    # pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3/4
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie counts half: (0.5 v 0.5) = ½, the other three pairs 1 -> 3.5/4
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert auc([1, 1, 0], [3, 3, 3]) == pytest.approx(0.5)
    assert average_ranks(np.array([10.0, 20.0, 10.0, 5.0])).tolist() == [2.5, 4.0, 2.5, 1.0]
    with pytest.raises(ValueError):
        auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError):
        auc([0, 2], [0.2, 0.3])


@pytest.mark.skipif(skm is None, reason="scikit-learn not installed (optional cross-check)")
def test_auc_equals_sklearn_with_many_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y * 0.7, 1.0), 1)  # rounding makes many ties
    assert auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_brier_and_ece_by_hand():
    assert brier([1, 0], [0.8, 0.3]) == pytest.approx((0.2 ** 2 + 0.3 ** 2) / 2)
    y, p = [0, 1, 1, 1], [0.05, 0.15, 0.95, 1.0]
    # bins: [0,.1): |0-.05|; [.1,.2): |1-.15|; [.9,1]: |1-.975| x2 -> (0.05 + 0.85 + 2*0.025)/4
    assert ece(y, p) == pytest.approx(0.2375)
    bins = reliability_bins(y, p)
    assert [b.count for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[9].mean_p == pytest.approx(0.975) and bins[9].frac_pos == 1.0 and math.isnan(bins[4].mean_p)
    assert ece([1, 0], [1.0, 0.0]) == 0.0
    with pytest.raises(ValueError):
        brier([1], [1.5])
    rep = calibration_report(y, p, n_bins=5)
    assert rep.auc == pytest.approx(1.0) and rep.n == 4
    json.dumps(rep.to_dict(), allow_nan=False)  # empty bins are null, not NaN
    assert calibration_report([1, 1], [0.6, 0.7]).auc is None


def test_platt_constant_score_by_hand():
    # s all 0: only b matters; σ(b) = mean smoothed target = (3 * 4/5 + 1 * 1/3) / 4
    cal = PlattScaler().fit([0.0, 0.0, 0.0, 0.0], [1, 1, 1, 0])
    target = (3 * 0.8 + 1 / 3) / 4
    assert cal.transform([0.0])[0] == pytest.approx(target, abs=1e-9)
    assert cal.b == pytest.approx(math.log(target / (1 - target)), abs=1e-8)


def test_platt_recovers_a_logistic_and_is_optimal():
    rng = np.random.default_rng(1)
    s = rng.normal(0, 1.5, 6000)
    y = (rng.random(6000) < 1 / (1 + np.exp(-(2.0 * s - 1.0)))).astype(int)
    cal = PlattScaler().fit(s, y)
    assert cal.a == pytest.approx(2.0, abs=0.15) and cal.b == pytest.approx(-1.0, abs=0.15)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    r = cal.transform(s) - t
    assert abs(np.dot(r, s)) < 1e-6 and abs(r.sum()) < 1e-6  # the gradient vanishes at the fit
    sep = PlattScaler().fit([-2, -1, 1, 2], [0, 0, 1, 1])  # separable: finite thanks to the smoothed targets
    assert math.isfinite(sep.a) and sep.a > 0 and sep.transform([2.0])[0] < 1.0


def test_pav_and_isotonic_by_hand():
    assert pav(np.array([0, 1, 0, 1, 1.0]), np.ones(5)).tolist() == [0, 0.5, 0.5, 1, 1]
    assert pav(np.array([3, 2, 1.0]), np.array([1, 1, 2.0])).tolist() == pytest.approx([1.75] * 3)
    cal = IsotonicCalibrator().fit([1, 2, 3, 4, 5], [0, 1, 0, 1, 1])
    assert cal.transform([0, 1, 2.5, 3, 4.5, 10]).tolist() == pytest.approx([0, 0, 0.5, 0.5, 1, 1])
    ties = IsotonicCalibrator().fit([1, 1, 2], [1, 0, 1])  # ties in s pooled first: [0.5, 1]
    assert ties.transform([1, 2]).tolist() == [0.5, 1.0]


@pytest.mark.skipif(skm is None, reason="scikit-learn not installed (optional cross-check)")
def test_isotonic_equals_sklearn():
    rng = np.random.default_rng(2)
    s = np.round(rng.normal(0, 1, 300), 2)
    y = (rng.random(300) < 1 / (1 + np.exp(-2 * s))).astype(float)
    ours = IsotonicCalibrator().fit(s, y)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    grid = np.linspace(-4, 4, 101)
    assert np.allclose(ours.transform(grid), ref.predict(grid))


def test_save_load_json_round_trip(tmp_path):
    s, y = [-1.0, -0.5, 0.2, 0.3, 1.1, 2.0], [0, 1, 0, 1, 1, 1]
    for kind in CALIBRATORS:
        cal = make_calibrator(kind).fit(s, y)
        path = tmp_path / f"{kind}.json"
        save_calibrator(cal, path)
        assert json.loads(path.read_text())["kind"] == kind  # plain JSON
        back = load_calibrator(path)
        assert type(back) is type(cal) and np.array_equal(back.transform(s), cal.transform(s))
    path.write_text(json.dumps({"kind": "pickle"}))
    with pytest.raises(ValueError):
        load_calibrator(path)
    with pytest.raises(ValueError):
        PlattScaler.from_dict({"kind": "platt", "format_version": 99, "a": 1, "b": 0})
    assert DEFAULT_CALIBRATOR == "platt"
