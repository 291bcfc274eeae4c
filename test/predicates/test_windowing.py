"""Windowing: chunked streaming resampling, hop/window timing from audio time, gaps, bad samples."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from clap_core.predicates.windowing import StreamResampler, Windower, level_dbfs


@pytest.mark.parametrize("from_sr, to_sr", [(44100, 16000), (48000, 16000), (8000, 16000), (16000, 16000)])
def test_stream_resampler_matches_whole_signal(from_sr: int, to_sr: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(from_sr * 2).astype(np.float32) * 0.1
    whole = resample_poly(x, to_sr, from_sr) if from_sr != to_sr else x
    r = StreamResampler(from_sr, to_sr)
    parts, pos = [], 0
    for n in rng.integers(1, 3000, size=200):
        chunk = x[pos:pos + n]
        pos += n
        parts.append(r.process(chunk, np.zeros(len(chunk), np.uint8))[0])
        if pos >= len(x):
            break
    rest = x[min(pos, len(x)):]
    parts.append(r.process(rest, np.zeros(len(rest), np.uint8), final=True)[0])
    streamed = np.concatenate(parts)
    assert len(streamed) == len(whole)
    assert np.max(np.abs(streamed - whole)) < 1e-6  # measured 8.9e-8


def _push_all(w: Windower, x: np.ndarray, sr: int, chunk: int, t0: float = 100.0):
    out = []
    for i in range(0, len(x), chunk):
        out += w.push(x[i:i + chunk], sr, t0 + i / sr)
    return out + w.flush()


def test_windows_slide_by_hop_with_audio_timestamps() -> None:
    sr = 16000
    w = Windower(16000, window_s=5.0, hop_s=0.5)
    wins = _push_all(w, np.zeros(sr * 8, np.float32), sr, 512)
    # 8 s of audio: windows end at 5.0, 5.5, ..., 8.0 → 7 windows
    assert [round(x.t_end - 100.0, 3) for x in wins] == [5.0 + 0.5 * i for i in range(7)]
    assert all(len(x.samples) == 80000 and x.flags == () for x in wins)
    assert wins[0].t_start == pytest.approx(100.0)


def test_window_content_is_the_audio_at_that_time() -> None:
    sr = 16000
    x = np.zeros(sr * 7, np.float32)
    x[sr * 6:sr * 6 + 10] = 0.5  # a click at t = 6.0 s
    wins = _push_all(Windower(sr, 5.0, 1.0), x, sr, 1000, t0=0.0)
    for win in wins:
        has_click = win.t_start <= 6.0 < win.t_end
        assert (np.abs(win.samples).max() > 0.4) == has_click


def test_resampled_input_gives_same_times() -> None:
    wins = _push_all(Windower(16000, 5.0, 0.5), np.zeros(44100 * 6, np.float32), 44100, 4410, t0=3.0)
    assert [round(x.t_end, 4) for x in wins] == [8.0, 8.5, 9.0]


def test_short_gap_is_filled_and_flagged() -> None:
    sr = 16000
    w = Windower(sr, window_s=2.0, hop_s=0.5)
    chunk = np.full(sr // 4, 0.1, np.float32)  # 0.25-s chunks; the one at t = 3.0 .. 3.5 is lost
    starts = [0.25 * i for i in range(24) if not 3.0 <= 0.25 * i < 3.5]
    wins = [x for t in starts for x in w.push(chunk, sr, t)]
    assert list(w.gaps) == [(3.0, pytest.approx(0.5))]
    flagged = [(x.t_start, x.t_end) for x in wins if "gap" in x.flags]
    assert flagged and all(s < 3.5 and e > 3.0 for s, e in flagged)
    # timing stays on one grid: every window is 2.0 s and hop 0.5 s apart
    ends = [x.t_end for x in wins]
    assert np.allclose(np.diff(ends), 0.5)


def test_long_gap_starts_a_new_segment() -> None:
    sr = 16000
    w = Windower(sr, window_s=2.0, hop_s=1.0, max_fill_s=1.0)
    first = w.push(np.zeros(sr * 3, np.float32), sr, 0.0)
    second = w.push(np.zeros(sr * 3, np.float32), sr, 60.0)
    second += w.flush()
    assert [x.t_end for x in first] == [2.0, 3.0] or [x.t_end for x in first] == [2.0]
    assert second[-1].t_end == pytest.approx(63.0)
    assert [x.t_start for x in second if x.t_start >= 60.0][0] == pytest.approx(60.0)
    new_seg = [x for x in second if x.t_start >= 60.0]
    assert "gap" in new_seg[0].flags and all("gap" not in x.flags for x in new_seg[1:])
    assert w.gaps[0][1] == pytest.approx(57.0)


def test_small_jitter_is_not_a_gap() -> None:
    sr = 16000
    w = Windower(sr, 1.0, 0.5)
    rng = np.random.default_rng(1)
    wins = []
    for i in range(40):
        wins += w.push(np.zeros(512, np.float32), sr, i * 512 / sr + rng.uniform(-0.004, 0.004))
    assert not w.gaps and all("gap" not in x.flags for x in wins)


def test_small_step_back_keeps_counting_and_flags() -> None:
    sr = 8000
    w = Windower(sr, 1.0, 0.5)
    w.push(np.zeros(sr * 2, np.float32), sr, 10.0)
    wins = w.push(np.zeros(sr // 10, np.float32), sr, 11.9)  # stamped 0.1 s early
    wins += w.push(np.zeros(sr, np.float32), sr, 12.1)
    assert w.gaps[0][1] == pytest.approx(-0.1)
    assert np.allclose(np.diff([x.t_end for x in wins]), 0.5)  # same grid, no reset
    assert any("gap" in x.flags for x in wins)


def test_time_going_backwards_is_a_gap() -> None:
    sr = 8000
    w = Windower(sr, 1.0, 0.5)
    w.push(np.zeros(sr * 2, np.float32), sr, 10.0)
    wins = w.push(np.zeros(sr * 2, np.float32), sr, 5.0)
    assert w.gaps[-1][1] == pytest.approx(-7.0)
    assert "gap" in wins[0].flags and wins[0].t_start == pytest.approx(5.0)


def test_nonfinite_samples_flag_only_the_windows_holding_them() -> None:
    sr = 8000
    x = np.full(sr * 6, 0.01, np.float32)
    x[sr * 5 + 100] = np.nan
    x[sr * 5 + 200] = np.inf
    wins = _push_all(Windower(sr, 2.0, 1.0), x, sr, 800, t0=0.0)
    for win in wins:
        holds = win.t_start <= 5.0 < win.t_end
        assert ("nonfinite" in win.flags) == holds
        assert np.isfinite(win.samples).all()


def test_clipped_audio_is_flagged() -> None:
    sr = 8000
    x = np.clip(np.sin(np.arange(sr * 2) * 0.3) * 3, -1, 1).astype(np.float32)
    wins = _push_all(Windower(sr, 1.0, 1.0), x, sr, 4000, t0=0.0)
    assert wins and all("clipped" in w.flags for w in wins)


def test_rate_change_starts_a_new_flagged_segment() -> None:
    w = Windower(16000, 1.0, 0.5)
    w.push(np.zeros(16000 * 2, np.float32), 16000, 0.0)
    wins = w.push(np.zeros(48000 * 2, np.float32), 48000, 2.0)
    new = [x for x in wins if x.t_start >= 2.0]
    assert new and "gap" in new[0].flags


def test_level_dbfs() -> None:
    assert level_dbfs(np.full(100, 0.1, np.float32)) == pytest.approx(-20.0, abs=1e-3)
    assert level_dbfs(np.zeros(10, np.float32)) == -120.0


def test_gap_records_stay_bounded_and_are_taken_once(monkeypatch) -> None:
    """A publisher whose stamps jitter by more than half a chunk records a gap per chunk; a node
    runs for days and nothing drains them, so only the latest GAP_RECORDS are kept."""
    from clap_core.predicates import windowing

    monkeypatch.setattr(windowing, "GAP_RECORDS", 40)
    sr = 16000
    w = Windower(sr, window_s=1.0, hop_s=0.5)
    chunk = np.full(sr // 10, 0.1, np.float32)
    for i in range(400):  # every other chunk 0.2 s late, the next one back on time
        w.push(chunk, sr, 0.1 * i + (0.2 if i % 2 else 0.0))
    assert len(w.gaps) == 40
    taken = w.take_gaps()
    assert len(taken) == 40 and taken[-1][0] > 38.0  # the latest ones
    assert w.take_gaps() == []
