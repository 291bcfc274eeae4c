"""compute_device resolution on the CPU; CUDA cases skipped with a visible reason when no GPU is present."""

import pytest
import torch

from clap_core.devices import resolve_device
from clap_core.errors import ConfigError

NO_CUDA = not torch.cuda.is_available()


def test_cpu_resolves_to_cpu() -> None:
    assert resolve_device(" CPU ") == torch.device("cpu")


def test_auto_follows_torch() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", "cuda:-1"])
def test_unknown_value_names_parameter(bad: str) -> None:
    with pytest.raises(ConfigError, match="compute_device"):
        resolve_device(bad)


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA device is present, so cuda must not fail")
@pytest.mark.parametrize("value", ["cuda", "cuda:0"])
def test_cuda_without_gpu_is_one_clear_line(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(value, parameter="--device")
    message = str(info.value)
    assert "--device" in message and "\n" not in message


@pytest.mark.skipif(NO_CUDA, reason="no CUDA device visible to torch on this machine")
def test_cuda_resolves_on_gpu() -> None:
    assert resolve_device("cuda") == torch.device("cuda", 0)
