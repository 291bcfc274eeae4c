"""YAMNet's front end against TensorFlow's own numbers (literals; TensorFlow is not needed here).

How the literals were obtained (TensorFlow 2.21.0, tensorflow-cpu from PyPI, in a scratch venv
outside this repository), following YAMNet's `features.py` (`waveform_to_log_mel_spectrogram`):

    W = tf.signal.linear_to_mel_weight_matrix(num_mel_bins=64, num_spectrogram_bins=257,
            sample_rate=16000, lower_edge_hertz=125.0, upper_edge_hertz=7500.0)
    stft = tf.signal.stft(signal, frame_length=400, frame_step=160, fft_length=512)  # periodic Hann
    log_mel = tf.math.log(tf.matmul(tf.abs(stft), W) + 0.001)

with `signal = _test_signal()` below (float32). Rows/argmaxes are exact; entries were printed as
float32, log-mels rounded to 4 decimals. Measured agreement of this project's float32 front end:
matrix 8.2e-6 (TF builds it in float32), log-mel 1.9e-4 where the value is > -5.5 and 3.0e-3 in
the near-empty bands (float32 FFT leakage, where TF and numpy float64 differ by 3.4e-3 too).
Smallest mutant effects on these log-mels: symmetric Hann 0.13, 10x log offset 1.2, fmax 7400
2.1, power instead of magnitude 3.8, rows shifted by one FFT bin 1.9, Slaney mel 6.6.
"""
from __future__ import annotations

import numpy as np
import pytest

from clap_core.towers.yamnet_frontend import FrontendConfig, YamnetFrontend, mel_matrix

# Per band (column): row of the largest weight, first and last non-zero row of W (257 x 64).
MEL_ARGMAX = [5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 24, 26, 27, 29, 31, 33, 35, 37, 39, 41,
              44, 46, 49, 51, 54, 57, 59, 62, 65, 69, 72, 75, 79, 82, 86, 90, 94, 98, 103, 107, 112, 117, 122,
              127, 132, 138, 143, 149, 156, 162, 169, 175, 183, 190, 198, 205, 214, 222, 231]
MEL_FIRST = [5, 5, 6, 7, 9, 10, 11, 12, 13, 14, 16, 17, 18, 20, 21, 23, 25, 26, 28, 30, 32, 34, 36, 38, 40,
             42, 44, 47, 49, 52, 54, 57, 60, 63, 66, 69, 72, 76, 79, 83, 87, 90, 95, 99, 103, 108, 112, 117,
             122, 127, 133, 138, 144, 150, 156, 162, 169, 176, 183, 190, 198, 206, 214, 223]
MEL_LAST = [5, 6, 8, 9, 10, 11, 12, 13, 15, 16, 17, 19, 20, 22, 24, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43,
            46, 48, 51, 53, 56, 59, 62, 65, 68, 71, 75, 78, 82, 86, 89, 94, 98, 102, 107, 111, 116, 121, 126,
            132, 137, 143, 149, 155, 161, 168, 175, 182, 189, 197, 205, 213, 222, 230, 239]
MEL_NONZERO = 461
# (row, band): W[row, band], incl. both ends of the first and last bands.
MEL_ENTRIES = {(5, 0): 0.9476916193962097, (5, 1): 0.05230840668082237, (6, 1): 0.933108389377594,
               (57, 31): 0.1663641780614853, (59, 31): 0.8704734444618225, (62, 31): 0.10515101999044418,
               (214, 62): 0.046641815453767776, (230, 62): 0.09974616020917892,
               (223, 63): 0.10419757664203644, (231, 63): 0.987822949886322, (239, 63): 0.10807264596223831,
               (10, 5): 0.796472430229187, (4, 0): 0.0, (240, 63): 0.0}

# log_mel[frame] of _test_signal(), 64 bands.
LOG_MEL = {
    0: [-0.7107, 0.3093, 1.2532, 2.1354, 2.2232, 1.7212, 1.6831, 3.2072, 4.0883, 3.6458, 1.7946, -0.5168,
        -1.6001, -1.7536, -3.2026, -3.2921, -3.4400, -4.4295, -4.1847, -4.7046, -5.0753, -4.9641, -5.6128,
        -5.3663, -5.8737, -5.6979, -5.9711, -5.9018, -5.9301, -5.7731, -5.7215, -5.2642, -4.9725, -4.4685,
        -3.6224, -2.4292, 0.1570, 3.6980, 3.2214, -1.1399, -2.9914, -3.9931, -4.7042, -5.2473, -5.6331,
        -5.9617, -6.1662, -6.3444, -6.4627, -6.5535, -6.6298, -6.6910, -6.7283, -6.7580, -6.7897, -6.8044,
        -6.8240, -6.8337, -6.8462, -6.8529, -6.8600, -6.8651, -6.8680, -6.8704],
    50: [-4.2101, -2.8943, -2.2897, -2.1252, -2.4375, -0.3604, 1.3013, 3.1876, 4.0890, 3.6456, 1.7906,
         -0.5430, -1.6025, -1.7864, -3.2449, -3.3015, -3.5041, -4.4946, -4.2258, -4.8058, -5.1195, -5.0505,
         -5.6498, -5.4429, -5.9360, -5.7693, -6.0180, -5.9580, -5.9678, -5.7927, -5.7487, -5.2643, -4.9672,
         -4.4675, -3.6188, -2.4271, 0.1572, 3.6980, 3.2214, -1.1437, -3.0402, -3.3706, -0.5196, 2.7285,
         2.7540, -0.6357, -3.5306, -4.8653, -5.6125, -6.0450, -6.3176, -6.4657, -6.5684, -6.6514, -6.7032,
         -6.7418, -6.7751, -6.7948, -6.8141, -6.8280, -6.8380, -6.8461, -6.8514, -6.8569],
    97: [-4.3891, -3.0080, -2.3568, -2.1614, -2.4477, -0.3650, 1.3002, 3.1876, 4.0890, 3.6455, 1.7910,
         -0.5413, -1.5950, -1.7745, -3.2264, -3.2657, -3.4637, -4.4402, -4.1472, -4.7369, -4.9945, -4.9502,
         -5.4878, -5.3156, -5.8233, -5.6462, -5.8701, -5.9183, -5.8190, -5.8511, -5.6538, -5.2800, -5.0143,
         -4.4531, -3.6243, -2.4312, 0.1571, 3.6980, 3.2214, -1.1398, -2.9922, -3.9908, -4.7069, -5.2379,
         -5.6311, -5.9452, -6.1526, -6.3314, -6.4339, -6.5147, -6.5666, -6.5913, -6.5659, -6.4627, -6.2643,
         -5.8295, -4.9895, -2.9671, 2.3553, 3.0591, -1.1701, -4.5834, -5.6988, -6.2429],
}


def _test_signal() -> np.ndarray:
    """1 s at 16 kHz: 440 Hz and 2.5 kHz tones plus a 200 Hz → 6.2 kHz chirp (closed formula)."""
    t = np.arange(16000, dtype=np.float64) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.25 * np.sin(2 * np.pi * 2500.0 * t)
            + 0.1 * np.sin(2 * np.pi * (200.0 * t + 3000.0 * t ** 2)))
    return wave.astype(np.float32)


@pytest.fixture(scope="module")
def mel() -> np.ndarray:
    return mel_matrix(FrontendConfig())


def test_mel_matrix_rows_match_tensorflow(mel):
    """Band edges, HTK-vs-Slaney and a one-bin shift all move these rows."""
    assert mel.shape == (257, 64)
    nonzero = mel > 0
    assert mel.argmax(axis=0).tolist() == MEL_ARGMAX
    assert nonzero.argmax(axis=0).tolist() == MEL_FIRST
    assert (256 - nonzero[::-1].argmax(axis=0)).tolist() == MEL_LAST
    assert int(nonzero.sum()) == MEL_NONZERO


def test_mel_matrix_values_match_tensorflow(mel):
    for (row, band), expected in MEL_ENTRIES.items():
        assert abs(float(mel[row, band]) - expected) < 5e-5, (row, band, float(mel[row, band]), expected)


def test_log_mel_matches_tensorflow():
    """Bound: 1e-3 where TF's value is > -5.5 (measured 1.9e-4), 1e-2 in near-empty bands (3.0e-3)."""
    log_mel = YamnetFrontend().log_mel(_test_signal()[None])[0]
    assert log_mel.shape == (98, 64)
    for frame, expected in LOG_MEL.items():
        ref = np.asarray(expected)
        bound = np.where(ref > -5.5, 1e-3, 1e-2)
        err = np.abs(log_mel[frame] - ref)
        assert np.all(err < bound), (frame, int(err.argmax()), float(err.max()))
