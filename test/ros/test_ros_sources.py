"""Source-side helpers that need no DDS: joining the chunks a source delivers."""
from __future__ import annotations

import numpy as np


def test_coalesce_joins_contiguous_chunks_and_keeps_gaps():
    from clap_ros.audio_chunks import AudioChunk, coalesce

    rate = 1000
    a = AudioChunk(np.ones(10, np.float32), rate, 0.0, arrival=1.0)
    b = AudioChunk(np.full(10, 2, np.float32), rate, 0.010, arrival=2.0)  # continues a
    c = AudioChunk(np.full(5, 3, np.float32), rate, 0.5, arrival=3.0)  # after a gap
    d = AudioChunk(np.full(5, 4, np.float32), 2000, 0.505, arrival=4.0)  # another rate
    out = coalesce([a, b, c, d])
    assert [chunk.t_first for chunk in out] == [0.0, 0.5, 0.505]
    assert np.array_equal(out[0].samples, np.r_[np.ones(10), np.full(10, 2)].astype(np.float32))
    assert out[0].arrival == 2.0 and out[1].arrival == 3.0 and out[2].sample_rate == 2000
    assert coalesce([]) == []
