"""The inference-only fused convolutions of CNN14 against plain conv → BatchNorm → ReLU."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clap_core import ClapError
from clap_core.towers.cnn14 import FoldedConv


def _layer(c_in: int, c_out: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    torch.manual_seed(c_in + c_out)
    conv, bn = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out).eval()
    with torch.no_grad():  # statistics away from identity, so that folding is really tested
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_()
        bn.bias.normal_()
    return conv, bn


@pytest.mark.parametrize("width", [1, 2, 3, 4, 8])
def test_fused_layer_equals_conv_bn_relu(width: int) -> None:
    conv, bn = _layer(FoldedConv.COLUMNS_MIN_CHANNELS, 16)
    folded = FoldedConv(conv, bn, width)
    x = torch.randn(2, conv.in_channels, 5, width).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want, got = F.relu(bn(conv(x))), folded(x)
    expected_mode = "columns" if width <= FoldedConv.COLUMNS_MAX_WIDTH else "conv"
    assert folded.mode in (expected_mode, "dense")  # "dense" where oneDNN is unavailable
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_kernel_column_layer_refuses_another_width() -> None:
    conv, bn = _layer(FoldedConv.COLUMNS_MIN_CHANNELS, 4)
    folded = FoldedConv(conv, bn, 2)
    if folded.mode != "columns":
        pytest.skip("oneDNN fused matmuls are not available in this torch build")
    with torch.inference_mode(), pytest.raises(ClapError, match="built for 2 Mel bins"):
        folded(torch.randn(1, conv.in_channels, 5, 4))
