"""Where the parts of a window lie: shared by the torch towers and the torch-free ONNX model."""
from __future__ import annotations

Span = tuple[float, float]


def part_spans(duration_s: float, part_s: float, part_hop_s: float) -> list[Span]:
    """Start/end seconds of `part_s`-long parts every `part_hop_s` inside `duration_s` (the last
    one ends at the window's end, so no audio is left out); one part (the whole) when the window
    is not longer than a part."""
    if part_s <= 0 or part_hop_s <= 0:
        raise ValueError(f"parts: part_s and part_hop_s must be positive, got {part_s}, {part_hop_s}")
    if duration_s <= part_s + 1e-9:
        return [(0.0, float(duration_s))]
    starts = [i * part_hop_s for i in range(int((duration_s - part_s) / part_hop_s + 1e-9) + 1)]
    if starts[-1] + part_s < duration_s - 1e-6:
        starts.append(duration_s - part_s)
    return [(float(s), float(s + part_s)) for s in starts]
