"""LargeKernelDWConv2d as a drop-in nn.Conv2d, and convert()."""
import torch
from torch import nn

import replk_ops
from replk_ops import LargeKernelDWConv2d


def test_state_dict_round_trip_with_conv2d():
    ours = LargeKernelDWConv2d(6, (13, 7))
    theirs = nn.Conv2d(6, 6, (13, 7), padding=(6, 3), groups=6)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 6, 15, 12)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-4)
    fresh = LargeKernelDWConv2d(6, (13, 7))
    fresh.load_state_dict(theirs.state_dict(), strict=True)
    torch.testing.assert_close(fresh(x), theirs(x), atol=1e-5, rtol=1e-4)


def test_module_is_a_conv2d_without_bias():
    conv = LargeKernelDWConv2d(4, 31, bias=False)
    assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.groups == 4
    assert conv.padding == (15, 15) and "backend='auto'" in repr(conv)


def test_module_dtype_and_device_arguments():
    conv = LargeKernelDWConv2d(4, 7, dtype=torch.float64, device="cpu")
    assert conv.weight.dtype == torch.float64
    assert conv(torch.randn(1, 4, 9, 9, dtype=torch.float64)).dtype == torch.float64


def test_from_conv2d_shares_parameters():
    conv = nn.Conv2d(8, 8, 9, padding=4, groups=8)
    ours = LargeKernelDWConv2d.from_conv2d(conv)
    assert ours.weight is conv.weight and ours.bias is conv.bias
    x = torch.randn(1, 8, 17, 17)
    torch.testing.assert_close(ours(x), conv(x), atol=1e-5, rtol=1e-4)


def test_from_conv2d_string_padding():
    conv = nn.Conv2d(3, 3, 7, padding="same", groups=3, bias=False)
    ours = LargeKernelDWConv2d.from_conv2d(conv)
    assert ours.padding == (3, 3)
    x = torch.randn(1, 3, 10, 11)
    torch.testing.assert_close(ours(x), conv(x), atol=1e-5, rtol=1e-4)


class _Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.pw = nn.Conv2d(8, 16, 1)
        self.dw_large = nn.Conv2d(16, 16, 13, padding=6, groups=16)
        self.dw_rect = nn.Conv2d(16, 16, (3, 11), padding=(1, 5), groups=16)
        self.dw_small = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.dw_strided = nn.Conv2d(16, 16, 7, stride=2, padding=3, groups=16)
        self.inner = nn.Sequential(nn.ReLU(), nn.Conv2d(16, 16, 9, padding=4, groups=16, bias=False))

    def forward(self, x):
        x = self.pw(x)
        x = self.dw_large(x) + self.dw_rect(x) + self.dw_small(x)
        return self.dw_strided(self.inner(x))


def test_convert_swaps_only_eligible_convs_and_keeps_outputs():
    model = _Small().eval()
    x = torch.randn(2, 8, 20, 20)
    before = model(x)
    keys = set(model.state_dict())
    assert replk_ops.convert(model) == 3
    assert isinstance(model.dw_large, LargeKernelDWConv2d)
    assert isinstance(model.dw_rect, LargeKernelDWConv2d)
    assert isinstance(model.inner[1], LargeKernelDWConv2d)
    assert type(model.dw_small) is nn.Conv2d and type(model.dw_strided) is nn.Conv2d and type(model.pw) is nn.Conv2d
    assert set(model.state_dict()) == keys
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-4)
    assert replk_ops.convert(model) == 0  # already converted


def test_convert_min_kernel_size():
    model = _Small()
    assert replk_ops.convert(model, min_kernel_size=12) == 1


def test_training_through_module_matches_conv2d():
    ref = nn.Conv2d(4, 4, 11, padding=5, groups=4)
    ours = LargeKernelDWConv2d(4, 11)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, 14, 13)
    for module in (ref, ours):
        module(x).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-3)
