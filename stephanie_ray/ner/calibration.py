"""Per-domain calibration of retrieval similarities from relevance judgments.

Judgments (JSONL, one per line): ``{"query": "sorting algorithm", "result": <mention id>, "relevant": 1}``
(``result_id`` is accepted for ``result``; the ids are those ``stephanie ner search --json`` prints).

Each judged pair's similarity is recomputed exactly (the query's projected vector against the mention's
indexed vector), so judgments on results past the top k still count. The judged **queries** are split
(a deterministic hash of the query text; ``ner.holdout_share`` held out): a calibrator is fitted on the
rest, and ECE and Brier on the held-out queries are reported before (the cosine clipped to [0, 1] read as
a probability) and after; the calibrator saved is then refitted on every judgment.

Method: **Platt** by default (``ner.calibrator``), the same reasoning as the critic's
(training/calibration.py, reused here): a domain has tens to hundreds of judgments, two parameters cannot
overfit them, and a strictly monotone map keeps the ranking; isotonic when a domain has thousands.

A domain with no calibrator gets the identity (``calibrated_similarity`` = the clipped cosine, flagged).
A calibrator fitted under another projection version is not applied (its similarities meant something
else) and says so. Domain detection: each calibrator keeps the centroid of its judged queries' vectors;
a query without a domain takes the nearest centroid at cosine >= ``ner.domain_threshold``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..jsonl import read_jsonl_objects
from ..training.calibration import calibration_report, load_calibrator, make_calibrator

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Judgment:
    query: str
    result: int
    relevant: int


def read_judgments(path: str | Path) -> list[Judgment]:
    out = []
    for where, d in read_jsonl_objects(path, "judgments"):
        q, r, rel = d.get("query"), d.get("result", d.get("result_id")), d.get("relevant")
        if not isinstance(q, str) or not q.strip():
            raise UserError(f"{where}: \"query\" must be a non-empty string")
        try:
            rid = int(r)
        except (TypeError, ValueError):
            raise UserError(f"{where}: \"result\" must be a mention id (an integer), got {r!r}") from None
        if rel not in (0, 1, True, False):
            raise UserError(f"{where}: \"relevant\" must be 0 or 1, got {rel!r}")
        out.append(Judgment(q.strip(), rid, int(rel)))
    if not out:
        raise UserError(f"{path}: no judgments")
    return out


def _slug(domain: str) -> str:
    if not isinstance(domain, str) or not domain.strip():
        raise UserError("a domain name is needed (--domain NAME)")
    return re.sub(r"[^\w.-]+", "_", domain.strip(), flags=re.UNICODE)[:100]


def _held_out(query: str, share: float) -> bool:
    h = int.from_bytes(hashlib.blake2b(query.casefold().encode(), digest_size=8).digest(), "big")
    return (h % 10_000) / 10_000 < share


def identity(sim: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(sim, dtype=np.float64), 0.0, 1.0)


def fit_domain(sims: np.ndarray, labels: np.ndarray, queries: list[str], *, method: str, holdout_share: float,
               min_judgments: int) -> tuple[Any, dict[str, Any]]:
    """Fit a calibrator; report ECE/Brier before and after on held-out queries (module docstring)."""
    if len(labels) < min_judgments:
        raise UserError(f"{len(labels)} usable judgments; at least {min_judgments} are needed (ner.min_judgments)")
    if labels.min() == labels.max():
        raise UserError("the judgments are all relevant or all irrelevant: calibration needs both")
    held = np.array([_held_out(q, holdout_share) for q in queries])
    report: dict[str, Any] = {"method": method, "judgments": int(len(labels)), "queries": len(set(queries)),
                              "positive_rate": round(float(labels.mean()), 4)}
    train, test = ~held, held
    if train.sum() < 2 or test.sum() < 2 or labels[train].min() == labels[train].max():
        report["holdout"] = "too few judged queries to hold some out: metrics are on the fitting data"
        train = test = np.ones_like(held)
    cal = make_calibrator(method).fit(sims[train], labels[train])
    before = calibration_report(labels[test], identity(sims[test]))
    after = calibration_report(labels[test], cal.transform(sims[test]))
    report.update({"held_out": int(test.sum()), "ece_before": round(before.ece, 4), "ece_after": round(after.ece, 4),
                   "brier_before": round(before.brier, 4), "brier_after": round(after.brier, 4),
                   "auc": None if after.auc is None else round(after.auc, 4)})
    final = make_calibrator(method).fit(sims, labels)
    return final, report


def save_domain(root: Path, domain: str, cal: Any, centroid: np.ndarray, projection_version: int,
                report: dict[str, Any]) -> Path:
    d = Path(root) / "calibration"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{_slug(domain)}.json"
    data = {"format_version": FORMAT_VERSION, "domain": domain, "projection_version": projection_version,
            "calibrator": cal.to_dict(), "centroid": [round(float(x), 6) for x in centroid], "report": report}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass
class DomainCalibrator:
    domain: str
    calibrator: Any
    centroid: np.ndarray
    report: dict[str, Any]


class CalibrationSet:
    """The calibrators that apply to one projection version, by domain."""

    def __init__(self, domains: dict[str, DomainCalibrator], stale: dict[str, int]):
        self.domains, self.stale = domains, stale

    @classmethod
    def load(cls, root: Path, projection_version: int) -> CalibrationSet:
        domains: dict[str, DomainCalibrator] = {}
        stale: dict[str, int] = {}
        d = Path(root) / "calibration"
        for path in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("format_version") != FORMAT_VERSION:
                    raise ValueError(f"format {data.get('format_version')!r}")
                tmp = path.with_suffix(".cal")
                tmp.write_text(json.dumps(data["calibrator"]), encoding="utf-8")
                try:
                    cal = load_calibrator(tmp)
                finally:
                    tmp.unlink(missing_ok=True)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("calibrator %s is unreadable (%s): not used; refit with stephanie ner calibrate", path, exc)
                continue
            if data.get("projection_version") != projection_version:
                stale[data["domain"]] = data.get("projection_version")
                continue
            domains[data["domain"]] = DomainCalibrator(data["domain"], cal,
                                                       np.asarray(data["centroid"], dtype=np.float32),
                                                       data.get("report", {}))
        return cls(domains, stale)

    def detect(self, qvec: np.ndarray, threshold: float) -> str | None:
        best, name = -2.0, None
        for d in self.domains.values():
            c = d.centroid / max(float(np.linalg.norm(d.centroid)), 1e-12)
            sim = float(np.dot(c, qvec))
            if sim > best:
                best, name = sim, d.domain
        return name if name is not None and best >= threshold else None

    def apply(self, domain: str | None, sims: np.ndarray) -> tuple[np.ndarray, bool, str | None]:
        """(calibrated similarities, whether a calibrator was applied, why not)."""
        if domain is None:
            return identity(sims), False, "no domain"
        if domain in self.domains:
            return np.asarray(self.domains[domain].calibrator.transform(sims), dtype=np.float64), True, None
        if domain in self.stale:
            return identity(sims), False, (f"the calibrator of {domain!r} was fitted under projection "
                                           f"v{self.stale[domain]}: refit with stephanie ner calibrate")
        return identity(sims), False, f"no calibrator for domain {domain!r}"
