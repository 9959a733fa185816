"""Training: turn verified responses into PACS updates.

Pure cores (no Ray, no database; importable and testable on their own):

* :mod:`.pacs`         the PACS objective in plain torch: masked sequence log-probs, r̂, RLOO ψ (flat
                       tensors + group ids, or padded), per-group class-balanced BCE, metrics with the
                       actor/critic gradient split, and :func:`~.pacs.pacs_step` (rejects NaN/inf steps);
* :mod:`.reference`    the frozen reference policy: :class:`~.reference.ReferenceSchedule` (refresh every
                       K updates) and module snapshots;
* :mod:`.verifiers`    the one registry of verifiers (name -> factory(config)): ``math``, ``reaction``,
                       ``ensemble``; callable on plain (prompt, response, context) items;
* :mod:`.calibration`  AUC, Brier, ECE, reliability bins, Platt scaling and isotonic regression (numpy,
                       saved as JSON).

Added by others on top of these: the RLVR dataset (groups of responses to one prompt, as Parquet), the
critic model and the actor adapter (critic mode / logprob mode), the Ray Train loop (which wraps the
plain trainer at the edge), and the CLI/job entry points.
"""
