"""Dilated convs on undilated kernels: space-to-batch (docs/design.md, "Dilation").

A conv with dilation (dh, dw) reads, for output row h, only input rows of the padded map congruent
to h modulo dh. So on the sub-grids ``x_pad[:, :, a::dh, b::dw]`` it is dh*dw undilated convs of
the same kernel, and their outputs interleave back into the dilated conv's. ``SpaceToBatch`` puts
the sub-grids into the batch dimension, so one call of an undilated backend (Triton, CUDA) runs all
of them, and the weight gradient's sum over the batch is also the sum over the sub-grids:

- forward: pad the input (the conv's padding, and zeros up to whole sub-grids), split it into
  sub-grids, run the undilated "valid" forward, interleave the outputs and crop to the output map;
- input gradient: split the output gradient (zero-padded to whole sub-grids) the same way, run the
  undilated input gradient of the "valid" conv, interleave, and crop the padding off again;
- weight gradient: the undilated weight gradient of those sub-grid pairs.

Each output-grid sub-grid holds ceil(Ho / dh) rows, each input sub-grid that plus kh - 1, so every
sub-grid call is a plain "valid" conv, whatever the map size.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .._checks import input_size, output_size
from .base import PassRunner


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _to_batch(t: torch.Tensor, dh: int, dw: int) -> torch.Tensor:
    """(N, C, dh*H, dw*W) -> (dh*dw*N, C, H, W): sub-grid (a, b) is ``t[:, :, a::dh, b::dw]``."""
    n, c, h, w = t.shape
    grids = t.reshape(n, c, h // dh, dh, w // dw, dw).permute(3, 5, 0, 1, 2, 4)
    return grids.reshape(dh * dw * n, c, h // dh, w // dw)


def _from_batch(t: torch.Tensor, dh: int, dw: int) -> torch.Tensor:
    """The inverse of ``_to_batch``."""
    b, c, h, w = t.shape
    n = b // (dh * dw)
    return t.reshape(dh, dw, n, c, h, w).permute(2, 3, 4, 0, 5, 1).reshape(n, c, h * dh, w * dw)


class _Grids:
    """The sub-grid sizes of one dilated problem: output sub-grids of (ho, wo), input sub-grids of
    (ho + kh - 1, wo + kw - 1)."""

    def __init__(self, out_hw: Tuple[int, int], kh: int, kw: int, dilation: Tuple[int, int]):
        self.dh, self.dw = dilation
        self.ho, self.wo = _ceil_div(out_hw[0], self.dh), _ceil_div(out_hw[1], self.dw)
        self.hi, self.wi = self.ho + kh - 1, self.wo + kw - 1

    def input_batch(self, x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
        # the conv's padding before, zeros after up to whole sub-grids (never negative: see module doc)
        bottom = self.dh * self.hi - x.shape[2] - ph
        right = self.dw * self.wi - x.shape[3] - pw
        return _to_batch(F.pad(x, (pw, right, ph, bottom)), self.dh, self.dw)

    def output_batch(self, dy: torch.Tensor) -> torch.Tensor:
        bottom, right = self.dh * self.ho - dy.shape[2], self.dw * self.wo - dy.shape[3]
        return _to_batch(F.pad(dy, (0, right, 0, bottom)), self.dh, self.dw)


class SpaceToBatch(PassRunner):
    """``inner`` (an undilated backend) for any dilation; undilated calls go straight to it."""

    def __init__(self, inner: PassRunner):
        self.inner = inner

    def unavailable_reason(self, problem) -> Optional[str]:
        return self.inner.unavailable_reason(problem)

    def fwd(self, x, weight, bias, ph, pw, dilation=(1, 1)):
        if tuple(dilation) == (1, 1):
            return self.inner.fwd(x, weight, bias, ph, pw)
        out_hw = output_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], ph, pw, dilation)
        grids = _Grids(out_hw, weight.shape[2], weight.shape[3], dilation)
        y = self.inner.fwd(grids.input_batch(x, ph, pw), weight, bias, 0, 0)
        return _from_batch(y, grids.dh, grids.dw)[:, :, :out_hw[0], :out_hw[1]]

    def bwd_input(self, grad_out, weight, ph, pw, dilation=(1, 1)):
        if tuple(dilation) == (1, 1):
            return self.inner.bwd_input(grad_out, weight, ph, pw)
        kh, kw = weight.shape[2], weight.shape[3]
        grids = _Grids(tuple(grad_out.shape[2:]), kh, kw, dilation)
        dx_pad = _from_batch(self.inner.bwd_input(grids.output_batch(grad_out), weight, 0, 0), grids.dh, grids.dw)
        h, w = input_size(grad_out.shape[2], grad_out.shape[3], kh, kw, ph, pw, dilation)
        return dx_pad[:, :, ph:ph + h, pw:pw + w]

    def bwd_weight(self, grad_out, x, kh, kw, ph, pw, dilation=(1, 1)):
        if tuple(dilation) == (1, 1):
            return self.inner.bwd_weight(grad_out, x, kh, kw, ph, pw)
        grids = _Grids(tuple(grad_out.shape[2:]), kh, kw, dilation)
        return self.inner.bwd_weight(grids.output_batch(grad_out), grids.input_batch(x, ph, pw), kh, kw, 0, 0)
