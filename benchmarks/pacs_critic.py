"""Does the PACS critic learn? Validation AUC before/after training, baselines, calibration, throughput.

    .venv/bin/python benchmarks/pacs_critic.py [--steps 120] [--real examples,/work/shared/samples] [--quick | --real-only]

Rows printed side by side, then one JSON object as the last line:

* ``synthetic``: the label is a known function of the text (the answer is about the prompt's topic;
  training/synthetic.py): validation AUC from ~0.5 before training to >= 0.9 after;
* ``real:<path>``: the exports imported, built into CaseBooks and scored first (embedded defaults), then
  prepared with the default verifier (the person's reaction) and trained; validation AUC before/after against
  a response-length baseline and the scoring ensemble's own overall score; ECE after calibration. A dataset
  too small for a split (or with one class) is reported as such;
* throughput: training samples/s and ms per step with 1 and 2 Ray Train workers on the same groups.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stephanie_ray.config import load_config  # noqa: E402
from stephanie_ray.db import Database  # noqa: E402
from stephanie_ray.training.calibration import auc  # noqa: E402


EXTRA: dict = {}  # --set section.field=value, applied to every run's config


def _cfg(runs: Path, **over):
    over = {**over, **EXTRA}
    base = {"run.runs_dir": str(runs), "run.progress": False, "ray.num_cpus": 2, "ingest.parallel": False,
            "scoring.parallel": False, "critic.cpus_per_worker": 0.5}
    base.update(over)
    return load_config(None, base, env={})


def _auc(y, s):
    y = np.asarray(y)
    return None if y.size == 0 or y.min() == y.max() else round(auc(y, np.asarray(s, dtype=float)), 4)


def synthetic(tmp: Path, steps: int, workers: int) -> dict:
    from stephanie_ray.training.dataset import save_dataset
    from stephanie_ray.training.synthetic import synthetic_rows
    from stephanie_ray.training.trainer import train_critic

    cfg = _cfg(tmp / "syn", **{"critic.steps": steps, "critic.workers": workers, "critic.checkpoint_every": steps,
                               "critic.run_name": f"syn-w{workers}"})
    db = Database.from_config(cfg)
    rows = synthetic_rows(300, 4, seed=0)
    save_dataset(db, rows, tmp / "syn", verifier="synthetic", verifier_version="1", settings={}, excluded={},
                 run_id=None)
    r = train_critic(cfg, db, tmp / "syn" / f"run-w{workers}")
    val = [x for x in rows if x.split == "val"]
    y = [x.label for x in val]
    return {"rows": len(rows), "val_rows": len(val), "workers": workers, "steps": r.steps,
            "auc_before": r.eval["before_training"]["raw"]["auc"], "auc_after": r.eval["after_training"]["raw"]["auc"],
            "ece_after_raw": r.eval["after_training"]["raw"]["ece"],
            "ece_after_calibrated": (r.eval["after_training"]["calibrated"] or {}).get("ece"),
            "auc_length_baseline": _auc(y, [x.response_chars for x in val]),
            "samples_per_s": r.samples_per_s, "ms_per_step": round(r.seconds_per_step * 1000, 2),
            "wall_s": r.seconds}


def real(tmp: Path, path: str, steps: int) -> dict:
    import pandas as pd

    from stephanie_ray.pipeline import run_pipeline

    name = Path(path).name
    cfg = _cfg(tmp / f"real-{name}", **{"critic.steps": steps, "critic.checkpoint_every": steps})
    res = run_pipeline(cfg, [path], ["ingest", "casebooks", "score", "prepare", "train"], progress=False)
    out: dict = {"source": path}
    prep, train = res.outputs.get("prepare"), res.outputs.get("train")
    if prep is None:
        out["note"] = f"not prepared: {res.outputs.get('prepare_skipped')}"
        return out
    out.update({"rows": prep.rows, "groups": prep.groups, "val_rows": prep.val_rows, "positives": prep.positives,
                "excluded": sum(prep.excluded.values()), "group_sizes": prep.group_sizes})
    df = pd.read_parquet(prep.path)
    val = df[df.split == "val"]
    out["auc_length_baseline"] = _auc(val.label, val.response_chars)
    out["auc_ensemble_baseline"] = _auc(val.label, val.reward)
    if train is None:
        out["note"] = f"not trained: {res.outputs.get('train_skipped')}"
        return out
    ev = train.eval
    out.update({"auc_before": ev["before_training"]["raw"]["auc"], "auc_after": ev["after_training"]["raw"]["auc"],
                "ece_after_raw": ev["after_training"]["raw"]["ece"],
                "ece_after_calibrated": (ev["after_training"].get("calibrated") or {}).get("ece"),
                "note": ev["after_training"].get("note") or ""})
    if prep.val_rows < 30:
        out["note"] = (out["note"] + "; " if out["note"] else "") + \
            f"only {prep.val_rows} validation rows: AUC/ECE are anecdotes, not measurements"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--real", default=f"{REPO / 'examples'},{REPO.parent / 'shared' / 'samples'}")
    ap.add_argument("--quick", action="store_true", help="synthetic only")
    ap.add_argument("--real-only", action="store_true", help="the real rows only (no synthetic, no throughput)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="K=V",
                    help="config override for every run, e.g. pacs.reset_every=10 (repeatable)")
    args = ap.parse_args()
    from stephanie_ray.config import parse_override

    EXTRA.update(dict(parse_override(kv) for kv in args.sets))
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as d:
        tmp = Path(d)
        syn = [] if args.real_only else [synthetic(tmp, args.steps, w) for w in (1, 2)]
        reals = [] if args.quick else [real(tmp, p, args.steps) for p in args.real.split(",")
                                       if p and Path(p).exists()]
    f = lambda v: "–" if v is None else str(v)  # noqa: E731
    print(f"{'dataset':<26}{'rows':>6}{'val':>6}{'AUC before':>12}{'AUC after':>11}{'len AUC':>9}{'ens AUC':>9}"
          f"{'ECE raw':>9}{'ECE cal':>9}")
    for s in syn[:1]:
        print(f"{'synthetic (topic match)':<26}{s['rows']:>6}{s['val_rows']:>6}{f(s['auc_before']):>12}"
              f"{f(s['auc_after']):>11}{f(s['auc_length_baseline']):>9}{'–':>9}{f(s['ece_after_raw']):>9}"
              f"{f(s['ece_after_calibrated']):>9}")
    for r in reals:
        print(f"{'real: ' + Path(r['source']).name:<26}{f(r.get('rows')):>6}{f(r.get('val_rows')):>6}"
              f"{f(r.get('auc_before')):>12}{f(r.get('auc_after')):>11}{f(r.get('auc_length_baseline')):>9}"
              f"{f(r.get('auc_ensemble_baseline')):>9}{f(r.get('ece_after_raw')):>9}"
              f"{f(r.get('ece_after_calibrated')):>9}" + (f"   ({r['note']})" if r.get("note") else ""))
    print()
    print(f"{'throughput (synthetic)':<26}{'workers':>8}{'steps':>7}{'samples/s':>11}{'ms/step':>9}")
    for s in syn:
        print(f"{'':<26}{s['workers']:>8}{s['steps']:>7}{s['samples_per_s']:>11}{s['ms_per_step']:>9}")
    print(json.dumps({"synthetic": syn, "real": reals, "seconds": round(time.perf_counter() - t0, 1)}, default=str))


if __name__ == "__main__":
    main()
