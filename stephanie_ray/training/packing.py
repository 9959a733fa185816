"""The Ray Data side of critic training: functions the Ray Data tasks run (light imports only: numpy,
pyarrow, safetensors; no torch, no database), so a fresh Ray worker process starts them quickly."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


@functools.lru_cache(maxsize=4)
def _features(cache: str) -> tuple[dict[int, int], np.ndarray]:
    from safetensors.numpy import load_file

    t = load_file(cache)
    e_p, e_r = t["prompt"], t["response"]
    x = np.concatenate([e_p, e_r, e_p * e_r, np.abs(e_p - e_r)], axis=1).astype(np.float32)  # (N, 4d)
    return {int(r): i for i, r in enumerate(t["row_id"])}, x


def attach_features(batch: Any, cache: str) -> Any:
    """pyarrow batch -> the same with ``x``: each row's pair features (critic.pair_features) as float32 bytes."""
    import pyarrow as pa

    index, x = _features(cache)
    rows = [index[int(r)] for r in batch.column("row_id").to_pylist()]
    return batch.append_column("x", pa.array([x[i].tobytes() for i in rows], type=pa.binary()))


def pack_group(table: Any) -> Any:
    """All rows of one group -> one row: ids, labels, and features or texts, in row-id order."""
    import pyarrow as pa

    t = table.sort_by("row_id")
    out = {"group_id": pa.array([t.column("group_id")[0].as_py()], pa.int64()), "n": pa.array([t.num_rows], pa.int32()),
           "row_ids": pa.array([t.column("row_id").to_pylist()], pa.list_(pa.int64())),
           "labels": pa.array([t.column("label").to_pylist()], pa.list_(pa.int8()))}
    if "x" in t.column_names:
        out["x"] = pa.array([b"".join(t.column("x").to_pylist())], pa.binary())
    else:
        out["prompts"] = pa.array([t.column("critic_prompt").to_pylist()], pa.list_(pa.string()))
        out["responses"] = pa.array([t.column("response").to_pylist()], pa.list_(pa.string()))
    return pa.table(out)


def is_split(batch: Any, split: str) -> Any:
    import pyarrow.compute as pc

    return batch.filter(pc.equal(batch.column("split"), split))
