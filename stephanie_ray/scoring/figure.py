"""The run report's figure: small multiples of quality along each CaseBook's trajectory."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ..db import Database
from ..db.models import Case, CaseBook, GoalState


def plot_trajectories(db: Database, path: Path, max_books: int = 12, cols: int = 4) -> Path | None:
    """Small multiples: one panel per CaseBook (the ``max_books`` largest), quality of each attempt along its
    trajectory, the champion so far as a step line, corrected attempts in red, accepted ones in green.

    One panel per CaseBook stays readable however many there are (one chart of many overlapping lines
    did not); the title says how many are left out.
    """
    with db.session() as s:
        total = s.scalar(select(func.count(func.distinct(Case.casebook_id))).where(Case.quality.is_not(None))) or 0
        sizes = s.execute(select(Case.casebook_id, func.count(Case.id)).where(Case.quality.is_not(None))
                          .group_by(Case.casebook_id).order_by(func.count(Case.id).desc(), Case.casebook_id)
                          .limit(max_books)).all()
        if not sizes:
            return None
        ids = [cb for cb, _ in sizes]
        books = {cb.id: cb for cb in s.scalars(select(CaseBook).where(CaseBook.id.in_(ids)))}
        champs = dict(s.execute(select(GoalState.casebook_id, GoalState.champion_case_id)
                                .where(GoalState.casebook_id.in_(ids))).all())
        # per CaseBook: (case id, position, quality, reaction, acknowledgement)
        series: dict[int, list[tuple[int, int, float, dict[str, Any], bool]]] = defaultdict(list)
        for cb, cid, pos, q, meta in s.execute(select(Case.casebook_id, Case.id, Case.position, Case.quality, Case.meta)
                                               .where(Case.casebook_id.in_(ids), Case.quality.is_not(None))
                                               .order_by(Case.casebook_id, Case.position)):
            meta = meta or {}
            series[cb].append((cid, pos, q, meta.get("reaction") or {}, bool(meta.get("acknowledgement"))))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    cols = min(cols, len(ids))
    rows = -(-len(ids) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(7.5, 3.6 * cols), 2.7 * rows + 1.1), squeeze=False,
                             sharey=True)
    for ax in axes.flat[len(ids):]:
        ax.set_visible(False)
    for ax, cb in zip(axes.flat, ids):
        every = series[cb]
        acks = [(pos, q) for _, pos, q, _, ack in every if ack]  # "thanks, works": shown, not an attempt
        pts = [pt for pt in every if not pt[4]]
        if acks:
            ax.scatter(*zip(*acks), facecolors="none", edgecolors="0.5", s=18, zorder=3)
        if pts:
            xs = [pos for _, pos, _, _, _ in pts]
            ys = [q for _, _, q, _, _ in pts]
            ax.plot(xs, ys, color="0.55", lw=0.8, zorder=1)
            ax.step(xs, np.maximum.accumulate(ys), where="post", color="tab:blue", lw=1.6, alpha=0.8, zorder=2)
            colours = ["tab:red" if r.get("corrected") else "tab:green" if r.get("accepted") else "0.35"
                       for _, _, _, r, _ in pts]
            ax.scatter(xs, ys, c=colours, s=18, zorder=3)
        champ = next(((pos, q) for cid, pos, q, _, _ in pts if cid == champs.get(cb)), None)
        if champ:
            ax.scatter([champ[0]], [champ[1]], marker="*", s=150, color="gold", edgecolor="black", lw=0.6, zorder=4)
        goal = " ".join((books[cb].description or books[cb].name).split())
        n = len(pts)
        ax.set_title(f"{goal[:38] + '…' if len(goal) > 39 else goal}\n{n} attempt{'s' if n != 1 else ''}"
                     + (f" · {verdict}" if (verdict := ((books[cb].meta or {}).get('progress') or {}).get('verdict'))
                        and verdict != "single attempt" else ""), fontsize=8)
        ax.set_xlim(-0.5, max(1.5, len(every) - 0.5))
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes[:, 0]:
        ax.set_ylabel("quality", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("attempt", fontsize=8)
    shown = f"the {len(ids)} largest of {total} scored CaseBooks" if total > len(ids) else f"{total} scored CaseBooks"
    fig.suptitle(f"Quality of each attempt along its CaseBook: {shown}", fontsize=10)
    dot = dict(marker="o", linestyle="", markersize=5)
    fig.legend(handles=[Line2D([], [], color="tab:blue", lw=1.6, label="best so far"),
                        Line2D([], [], marker="*", linestyle="", markersize=11, color="gold", markeredgecolor="black",
                               label="champion"),
                        Line2D([], [], color="tab:red", label="corrected by the person", **dot),
                        Line2D([], [], color="tab:green", label="accepted", **dot),
                        Line2D([], [], color="0.35", label="no verdict", **dot),
                        Line2D([], [], marker="o", linestyle="", markersize=5, markerfacecolor="none",
                               markeredgecolor="0.5", label="\"thanks\": not an attempt")],
               loc="lower center", ncol=3 if cols < 3 else 6, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.1 if cols < 3 else 0.06) if rows == 1 else 0.035, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": a wide legend is never cut
    plt.close(fig)
    return path
