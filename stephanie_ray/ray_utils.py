"""The one place that connects to Ray.

Library code never calls ``ray.init`` itself: entry points (CLI, jobs, tests) call
:func:`ensure_ray`, which

* does nothing when Ray is already initialised in this process;
* connects to ``ray.address`` from the config, else to ``$RAY_ADDRESS`` (set by ``ray job submit``
  inside a job, or by a user pointing at a cluster);
* otherwise starts a local in-process Ray sized to this machine.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .config import RayConfig
from .errors import UserError

log = logging.getLogger(__name__)


def ensure_ray(cfg: RayConfig | None = None) -> dict[str, Any]:
    """Make sure this process is connected to Ray; return a short description of the cluster."""
    cfg = cfg or RayConfig()
    # No usage reporting from a machine that may have no network (and no need to ask).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS", "")
        if address:
            log.info("connecting to Ray at %s", address)
            try:
                ray.init(address=address, namespace=cfg.namespace, log_to_driver=True)
            except (ConnectionError, RuntimeError) as exc:
                raise UserError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
        else:
            kwargs: dict[str, Any] = {
                "address": "local",
                "num_cpus": cfg.num_cpus or os.cpu_count() or 1,
                "include_dashboard": cfg.include_dashboard,
                "namespace": cfg.namespace,
                "log_to_driver": True,
            }
            if cfg.num_gpus >= 0:
                kwargs["num_gpus"] = cfg.num_gpus
            if cfg.object_store_memory_mb:
                kwargs["object_store_memory"] = cfg.object_store_memory_mb * 1024 * 1024
            log.info("starting a local Ray with %s CPUs", kwargs["num_cpus"])
            ray.init(**kwargs)
    resources = ray.cluster_resources()
    return {
        "address": ray.get_runtime_context().gcs_address,
        "cpus": resources.get("CPU", 0),
        "gpus": resources.get("GPU", 0),
        "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
    }


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
