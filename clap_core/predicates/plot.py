"""A predicate timeline as a picture: one lane per predicate, read at a glance.

Each lane shows the score (line, at the window's centre), the on/off thresholds (dashed/dotted),
the times the predicate was true (solid bar under the curve), events that fired (triangles), and
the labelled events (shaded spans) when labels are given. Gaps and skipped windows are hatched
across all lanes, so a missing decision is never mistaken for a "false".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .metrics import Event

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def plot_timeline(timeline: list[dict[str, Any]], out: str | Path, events: list[Event] | None = None,
                  title: str | None = None) -> Path:
    """Write the PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(timeline[0]["predicates"])
    events = events or []
    t_end = max(r["t_end"] for r in timeline)
    hop = _hop(timeline)
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 1.6 * len(names) + 0.9), sharex=True, squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[:, 0], names)):
        _lane(ax, name, timeline, [e for e in events if e.predicate == name], COLORS[i % len(COLORS)], hop)
        ax.set_xlim(0, t_end)
    axes[-1, 0].set_xlabel("time from the first audio sample (s); scores plotted at window centres")
    top = 1.0
    if title:
        fig.suptitle(title, y=0.995, fontsize=10)
        top = 0.955
    handles = _legend_handles(plt, bool(events))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, top))
    fig.tight_layout(rect=(0, 0, 1, top - 0.045))
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _hop(timeline: list[dict[str, Any]]) -> float:
    if len(timeline) < 2:
        return timeline[0]["t_end"] - timeline[0]["t_start"]
    return max(1e-3, timeline[1]["t_end"] - timeline[0]["t_end"])


def _lane(ax: Any, name: str, timeline: list[dict[str, Any]], events: list[Event], color: str, hop: float) -> None:
    for e in events:
        ax.axvspan(e.start, e.end, color="#f2c14e", alpha=0.35, lw=0)
    xs, ys = [], []
    for r in timeline:
        mid = 0.5 * (r["t_start"] + r["t_end"])
        p = r["predicates"][name]
        if p.get("score") is None or "gap" in r.get("flags", ()):
            ax.axvspan(mid - hop / 2, mid + hop / 2, facecolor="none", edgecolor="#999999", hatch="///", lw=0)
        if p.get("score") is None:
            xs.append(mid)
            ys.append(float("nan"))
            continue
        xs.append(mid)
        ys.append(p["score"])
        if p["value"]:
            ax.add_patch(_bar(mid - hop / 2, hop, color))
        if name in r.get("fired", ()):
            ax.plot([mid], [1.06], marker="v", color=color, ms=6, clip_on=False)
    ax.plot(xs, ys, color=color, lw=1.4)
    threshold = timeline[0]["predicates"][name].get("threshold")
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=0.8)
    ax.set_ylim(-0.12, 1.12)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def _bar(x: float, width: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, -0.11), width, 0.08, color=color, lw=0)


def _legend_handles(plt: Any, with_events: bool) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="#444444", lw=1.4, label="score"),
               Line2D([], [], color="black", ls="--", lw=0.8, label="threshold"),
               Patch(color="#444444", label="value true (bar)"),
               Line2D([], [], color="#444444", marker="v", ls="", label="turned true / event fired"),
               Patch(facecolor="none", edgecolor="#999999", hatch="///", label="gap / skipped")]
    if with_events:
        handles.insert(0, Patch(color="#f2c14e", alpha=0.35, label="labelled event"))
    return handles
