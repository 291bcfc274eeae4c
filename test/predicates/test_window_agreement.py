"""Node, replay and calibration cut the same audio into the same windows (one windowing: `Windower`).

The model records every window it is asked to embed, so the check is on what each path actually
feeds the model: node-style streaming (1024-sample chunks with stamps, `PredicateEngine.push`),
replay of the same audio written to a file (`clap_ros.replay`), and the calibrator's windows of an
example recording placed in room tone (`placement.example_windows`) — same starts, same samples.
"""
from __future__ import annotations

import numpy as np
import soundfile as sf

from clap_core.audio_io import load_audio
from clap_core.predicates import PredicateEngine, parse_predicate_config
from clap_core.predicates.placement import Placement, example_windows, mixes
from clap_ros.replay import open_source, replay

SR = 8000


class Recorder:
    """Wraps the band model; keeps a copy of every window it embeds."""

    def __init__(self, model) -> None:
        self.model, self.windows = model, []
        self.sample_rate, self.clip_seconds, self.logit_scale = model.sample_rate, model.clip_seconds, model.logit_scale

    def embed_audio(self, waveform, sample_rate):
        self.windows += [np.array(w) for w in np.asarray(waveform)]
        return self.model.embed_audio(waveform, sample_rate)

    def embed_audio_parts(self, waveform, sample_rate, part_s, part_hop_s):
        self.windows += [np.array(w) for w in np.asarray(waveform)]
        return self.model.embed_audio_parts(waveform, sample_rate, part_s, part_hop_s)

    def embed_text(self, texts, mixes=None):
        return self.model.embed_text(texts, mixes)

    def __getattr__(self, name):  # the rest of the model contract, unchanged
        return getattr(self.model, name)


def test_node_replay_and_calibration_make_the_same_windows(tmp_path, band_model, tone) -> None:
    example = tmp_path / "example.wav"
    sf.write(example, tone(3000, 1.7, SR), SR, subtype="FLOAT")
    placement = Placement(snrs_db=(20.0,))
    calib = Recorder(band_model)
    got = example_windows(calib, example, 2.0, placement)  # the node's hop by default
    mix = mixes(load_audio(example)[0], SR, 2.0, placement)[0][0]
    assert len(calib.windows) == len(got.starts) == round((len(mix) / SR - 2.0) / 0.5) + 1

    cfg = parse_predicate_config({"predicates": {"clang": "a high tone"}})
    node = Recorder(band_model)
    engine = PredicateEngine(node, cfg, window_s=2.0)
    node_starts = [r.t_start for i in range(0, len(mix), 1024)
                   for r in engine.push(mix[i:i + 1024], SR, i / SR)] + [r.t_start for r in engine.flush()]

    sf.write(tmp_path / "mix.wav", mix, SR, subtype="FLOAT")
    played = Recorder(band_model)
    replay_starts = [r.t_start for r in replay(PredicateEngine(played, cfg, window_s=2.0),
                                               open_source(tmp_path / "mix.wav"))]

    np.testing.assert_allclose(node_starts, got.starts, atol=1e-9)
    np.testing.assert_allclose(replay_starts, got.starts, atol=1e-9)
    for a, b, c in zip(calib.windows, node.windows, played.windows, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
