"""Log-Mel front end (PANNs/CLAP 2022 recipe), inside the model so callers pass raw waveforms.

Uses `torch.stft` (an FFT) rather than a convolution with a DFT basis: the same numbers for a
fraction of the work. Only an ONNX export uses the convolution (ONNX has no complex tensors).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..precision import full_precision


def _hz_to_mel_slaney(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False)."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    above = freq >= min_log_hz
    mels = np.where(above, min_log_mel + np.log(np.maximum(freq, 1e-12) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    above = mels >= min_log_mel
    return np.where(above, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the Slaney mel scale with area normalisation, `[n_fft//2 + 1, n_mels]`."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    hz_points = _mel_to_hz_slaney(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels]))[:, None]
    return weights.T.astype(np.float32)


class LogMelFrontEnd(nn.Module):
    """waveform `[B, T]` → log-Mel `[B, frames, n_mels]` in dB (10·log10 of power, floored at amin)."""

    def __init__(self, sample_rate: int, n_fft: int, hop_size: int, n_mels: int, fmin: float,
                 fmax: float, amin: float = 1e-10) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_size = hop_size
        self.amin = amin
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        basis = slaney_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
        # Persistent: checkpoints carry the exact filterbank they were trained with.
        self.register_buffer("mel_basis", torch.from_numpy(basis))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with full_precision(waveform.device):  # fp32 whatever the model's precision (clap_core.precision)
            return self._log_mel(waveform.float())

    def _log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():  # an ONNX export: ONNX has no complex tensors; same numbers, as a conv
            power = self._power_by_convolution(waveform)
        else:
            spec = torch.stft(waveform, self.n_fft, hop_length=self.hop_size, win_length=self.n_fft,
                              window=self.window, center=True, pad_mode="reflect", return_complex=True)
            power = spec.real.square() + spec.imag.square()  # [B, freq, frames]
        mel = torch.matmul(power.transpose(1, 2), self.mel_basis)
        return 10.0 * torch.log10(torch.clamp(mel, min=self.amin))

    def _power_by_convolution(self, waveform: torch.Tensor) -> torch.Tensor:
        """`[B, freq, frames]` power spectrum, centred frames with reflect padding like `torch.stft`."""
        real, imag = self.dft_kernels()
        padded = F.pad(waveform[:, None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        kernels = torch.cat([real, imag]).to(waveform.dtype)
        spec = F.conv1d(padded, kernels, stride=self.hop_size)  # [B, 2·freq, frames]
        return spec.square().view(spec.shape[0], 2, -1, spec.shape[-1]).sum(dim=1)

    def dft_kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The windowed DFT basis a convolutional STFT would use (`[freq, 1, n_fft]` real, imag).

        Checkpoints in Microsoft's layout store these; we verify them on load and rebuild them
        on export instead of computing with them.
        """
        n = torch.arange(self.n_fft, dtype=torch.float64)
        k = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * torch.pi * k * n / self.n_fft
        window = self.window.to(torch.float64)
        real = (torch.cos(angle) * window).float()[:, None, :]
        imag = (-torch.sin(angle) * window).float()[:, None, :]
        return real, imag
