"""The engine soak (`bench/soak.py`), short: real recordings with silence, clipping and NaN bursts
through the `PredicateEngine` — nothing lost, nothing doubled, exactly the NaN windows skipped."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


@pytest.fixture(scope="module")
def soak_module(sounds45):
    spec = importlib.util.spec_from_file_location("soak_bench", SOAK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_short_engine_soak_loses_nothing(soak_module):
    report = soak_module.soak(hours=0.06, hop_s=0.5)  # 3.6 min of audio: one fault cycle and more
    assert report.exceptions == 0
    assert report.windows == report.windows_expected > 400
    assert report.hop_grid_exact
    assert report.skipped == report.skipped_expected > 0 and report.skipped_wrong == 0
    assert report.ok


def test_expected_counts_are_independent_of_the_engine(soak_module):
    """The expectation is arithmetic on sample counts, not the engine's windowing: 10 s at 16 kHz
    into 5-s windows at hop 0.5 s gives 11 windows; a NaN span at 7.0–7.05 s touches the windows
    starting at 2.5 … 7.0 s."""
    assert soak_module.expected_windows(160000, 16000, 5.0, 0.5) == 11
    assert soak_module.expected_windows(160000, 44100, 5.0, 0.5) == 11
    assert soak_module.expected_windows(79999, 16000, 5.0, 0.5) == 0
    assert soak_module._windows_touching([(7.0, 7.05)], 5.0, 0.5, 100) == 10
