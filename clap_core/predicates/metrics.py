"""Scoring a predicate timeline against labelled events.

Timeline: the replay JSON lines (`t_start`, `t_end`, `predicates.<name>.value/score`), times in
seconds from the recording's first sample. Labels: `{"events": [{"start", "end", "predicate"}]}`.

Per window, a predicate's truth is *true* when a labelled event of it fills at least half of
`min(window length, event length)` — the window holds half the event, or the event fills half
the window — *false* when no event touches the window, and *don't care* in between (a window that
only grazes an event is neither a hit nor a false alarm: a 5-s window with 0.5 s of the sound is
not a fair test either way; sound-event evaluations use collars for the same reason). Windows
the engine skipped (score null) are not scored. Events: detected when a true window overlaps
them; the delay is from the event's start to the end of the first such window (when the decision
was known). A false alarm is a run of true windows that overlaps no event of that predicate.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Event:
    start: float
    end: float
    predicate: str


@dataclass
class PredicateScore:
    name: str
    windows: int  # scored windows (don't-care and skipped windows excluded)
    precision: float
    recall: float
    f1: float
    events: int
    detected: int
    mean_delay_s: float | None
    max_delay_s: float | None
    false_alarms: int
    false_alarms_per_min: float


def read_timeline(path: str | Path) -> list[dict[str, Any]]:
    """JSON lines from `clap-predicates replay --json` (blank lines ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read timeline ({exc.strerror or exc})") from None
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            float(row["t_start"]), float(row["t_end"]), dict(row["predicates"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{i}: not a replay JSON line with t_start, t_end, predicates ({exc})") from None
        out.append(row)
    if not out:
        raise ConfigError(f"{path}: the timeline is empty; run clap-predicates replay --json first")
    return out


def read_labels(path: str | Path) -> list[Event]:
    path = Path(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read labels ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ConfigError(f"{path}: expected {{\"events\": [{{\"start\", \"end\", \"predicate\"}}, ...]}}")
    events = []
    for i, e in enumerate(data["events"]):
        try:
            ev = Event(float(e["start"]), float(e["end"]), str(e["predicate"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}: events[{i}]: needs numeric start, end and a predicate name") from None
        if not ev.end > ev.start:
            raise ConfigError(f"{path}: events[{i}]: end must be after start")
        events.append(ev)
    return events


def window_truth(t_start: float, t_end: float, events: list[Event]) -> bool | None:
    """True / False / None (don't care) for one window and one predicate's events."""
    best_ratio = 0.0
    touched = False
    for e in events:
        overlap = min(t_end, e.end) - max(t_start, e.start)
        if overlap > 0:
            touched = True
            need = 0.5 * min(t_end - t_start, e.end - e.start)
            best_ratio = max(best_ratio, overlap / need)
    if best_ratio >= 1.0 - 1e-9:
        return True
    return None if touched else False


def score_timeline(timeline: list[dict[str, Any]], events: list[Event],
                   names: list[str] | None = None) -> list[PredicateScore]:
    """Per-predicate scores; `names` defaults to every predicate in the timeline."""
    names = names or list(timeline[0]["predicates"])
    duration_min = max((r["t_end"] for r in timeline), default=0.0) / 60.0 or 1e-9
    return [_score_one(n, timeline, [e for e in events if e.predicate == n], duration_min) for n in names]


def _score_one(name: str, timeline: list[dict[str, Any]], events: list[Event], minutes: float) -> PredicateScore:
    tp = fp = fn = n = 0
    on_windows: list[dict[str, Any]] = []
    for r in timeline:
        p = r["predicates"].get(name)
        if p is None or p.get("score") is None:
            continue
        value = bool(p["value"])
        if value:
            on_windows.append(r)
        truth = window_truth(r["t_start"], r["t_end"], events)
        if truth is None:
            continue
        n += 1
        tp += value and truth
        fp += value and not truth
        fn += (not value) and truth
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    delays = []
    for e in events:
        hits = [r["t_end"] for r in on_windows if r["t_start"] < e.end and r["t_end"] > e.start]
        if hits:
            delays.append(max(0.0, min(hits) - e.start))
    false_alarms = sum(1 for run in _runs(on_windows, timeline)
                       if not any(r["t_start"] < e.end and r["t_end"] > e.start for r in run for e in events))
    return PredicateScore(
        name=name, windows=n, precision=precision, recall=recall, f1=f1, events=len(events),
        detected=len(delays), mean_delay_s=sum(delays) / len(delays) if delays else None,
        max_delay_s=max(delays) if delays else None, false_alarms=false_alarms,
        false_alarms_per_min=false_alarms / minutes)


def _runs(on: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive true windows (consecutive in the timeline) grouped into runs."""
    index = {id(r): i for i, r in enumerate(timeline)}
    runs: list[list[dict[str, Any]]] = []
    last = -2
    for r in on:
        i = index[id(r)]
        if i == last + 1 and runs:
            runs[-1].append(r)
        else:
            runs.append([r])
        last = i
    return runs


def macro_f1(scores: list[PredicateScore]) -> float:
    return sum(s.f1 for s in scores) / len(scores) if scores else 0.0


def format_scores(scores: list[PredicateScore]) -> str:
    """A table a person reads in a terminal."""
    head = (f"{'predicate':<20} {'windows':>7} {'prec':>5} {'recall':>6} {'F1':>5} {'events':>7} "
            f"{'delay s':>8} {'FA/min':>7}")
    rows = [head]
    for s in scores:
        delay = "-" if s.mean_delay_s is None else f"{s.mean_delay_s:.2f}"
        rows.append(f"{s.name:<20} {s.windows:>7} {s.precision:>5.2f} {s.recall:>6.2f} {s.f1:>5.2f} "
                    f"{s.detected:>3}/{s.events:<3} {delay:>8} {s.false_alarms_per_min:>7.2f}")
    rows.append(f"{'macro F1':<20} {'':>7} {'':>5} {'':>6} {macro_f1(scores):>5.2f}")
    return "\n".join(rows)


def scores_json(scores: list[PredicateScore]) -> dict[str, Any]:
    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
    return {"predicates": [clean(asdict(s)) for s in scores], "macro_f1": macro_f1(scores)}
