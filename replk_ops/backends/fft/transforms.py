"""The three passes of a depthwise conv as products of 2-D real FFTs (``torch.fft``).

Along one axis (the other is the same), with input length H, kernel k, padding p and output
length Ho = H + 2p - k + 1, the forward is ``y[o] = sum_n x[n] g[o - n]`` with ``g[d] = w[p - d]``
for d in [p - k + 1, p]. A circular convolution of size s gives the same ``y[o]`` for every o in
[0, Ho) as long as no shifted copy of g's support reaches a difference ``o - n`` that occurs,
which holds for ``s >= max(H + p, Ho + k - 1 - p)`` (and s >= H, Ho, k so that each signal fits).
That is less than the linear size H + k - 1 wherever p < k - 1 ("same" padding: H + k // 2), and
the output is the first Ho entries: the wrap-around lands only outside the crop. The input and
weight gradients are the matching correlations, with the same differences and so the same s.
See docs/design.md, "FFT".
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence, Tuple

import torch

# Channels transformed at once are bounded so that one complex spectrum of a chunk stays near this
# size: it keeps a fwd+bwd's peak memory below the direct route's (benchmarks/fft_vs_direct.py:
# 8.8 MiB against 13.6 at 1x128x56x56 k31, where one spectrum of all channels is 2.7 MiB) and the
# working set in cache (no slower than 64 MiB chunks: 21.1 against 21.1 ms, 28.2 against 31.9 ms
# at 1x96x56x56 k51).
CHUNK_BYTES = 512 << 10


# The prime factors a transform length may have. Measured (pocketfft, one thread, rfft2 and irfft2
# of 96 planes of 56x56): 84 = 2^2*3*7 takes 3.8 ms, 90 = 2*3^2*5 5.1 ms, 96 4.7 ms, 100 = 2^2*5^2
# 6.4 ms: powers of 5 cost more than 7s, so lengths are 2,3,7-smooth.
PRIMES = (2, 3, 7)


@functools.lru_cache(maxsize=None)
def smooth_size(n: int) -> int:
    """The least integer >= n with no prime factors but PRIMES."""
    m = max(n, 1)
    while True:
        rest = m
        for p in PRIMES:
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


def axis_size(length: int, k: int, p: int) -> int:
    """The transform length along one axis (see the module's docstring): even, since pocketfft's
    real transforms of odd lengths take about twice as long per point (81: 3.9 ns, 90: 2.0 ns)."""
    out = length + 2 * p - k + 1
    least = max(length + p, out + k - 1 - p, length, out, k, 1)
    return 2 * smooth_size((least + 1) // 2)


def transform_shape(h: int, w: int, kh: int, kw: int, ph: int, pw: int) -> Tuple[int, int]:
    return transform_sizes((h, w), (kh, kw), (ph, pw))


def transform_sizes(sizes: Sequence[int], kernel: Sequence[int], padding: Sequence[int]) -> Tuple[int, ...]:
    """The transform length along each axis (any number of axes)."""
    return tuple(axis_size(n, k, p) for n, k, p in zip(sizes, kernel, padding))


def _dims(s) -> Tuple[int, ...]:
    """The last len(s) dimensions: the axes a transform of size ``s`` runs over."""
    return tuple(range(-len(s), 0))


def _wrapped(k: int, shift: int, size: int, device) -> torch.Tensor:
    """Positions (t + shift) mod size for t in [0, k): where a roll would put each of k entries."""
    return (torch.arange(k, device=device) + shift) % size


def _segments(k: int, shift: int, size: int):
    """(source slice, destination slice) pairs that put entry t of k at (t + shift) mod size: a
    rotation is at most two contiguous pieces."""
    start = shift % size
    first = min(k, size - start)
    pieces = [(slice(0, first), slice(start, start + first))]
    if first < k:
        pieces.append((slice(first, k), slice(0, k - first)))
    return pieces


def kernel_spectrum(weight: torch.Tensor, s: Tuple[int, int], ph: int, pw: int) -> torch.Tensor:
    """rfft2 of g (the flipped kernel, tap (i, j) at ((p - i) mod s)): (C, sh, sw // 2 + 1)."""
    return kernel_spectrum_nd(weight, s, (ph, pw))


def kernel_spectrum_nd(weight: torch.Tensor, s: Sequence[int], padding: Sequence[int]) -> torch.Tensor:
    """The real FFT over len(s) axes of g, the flipped kernel with tap t at ((p - t) mod s) along
    each axis: (C, s[0], ..., s[-1] // 2 + 1)."""
    c, kernel = weight.shape[0], tuple(weight.shape[-len(s):])
    dims = _dims(s)
    flipped = weight.reshape((c,) + kernel).flip(dims)
    placed = weight.new_zeros((c,) + tuple(s))
    # flipped tap t sits at t - (k - 1 - p) (modulo s): up to two block copies per axis, not a full-size roll
    per_axis = [_segments(k, p - k + 1, n) for k, p, n in zip(kernel, padding, s)]
    for pieces in itertools.product(*per_axis):
        src = tuple(src for src, _ in pieces)
        dst = tuple(dst for _, dst in pieces)
        placed[(slice(None),) + dst] = flipped[(slice(None),) + src]
    return torch.fft.rfftn(placed, dim=dims)
def spectrum(t: torch.Tensor, s: Tuple[int, int]) -> torch.Tensor:
    """The real FFT of each (n, c) plane (or volume) of ``t``, zero-padded at the end to ``s``."""
    return torch.fft.rfftn(t, s=s, dim=_dims(s))


def crop_inverse(spec: torch.Tensor, s: Sequence[int], hw: Sequence[int]) -> torch.Tensor:
    """The first hw of the inverse real FFT of spec over len(s) axes: the outer axes first, each
    cropped before the next runs, so that the row transforms run only on the rows kept (about 20%
    less work than irfft2 and a crop in 2-D)."""
    for axis in range(-len(s), -1):
        spec = torch.fft.ifft(spec, dim=axis).narrow(axis, 0, hw[axis])
    return torch.fft.irfft(spec, n=s[-1], dim=-1)[..., :hw[-1]]


def weight_from_correlation(spec: torch.Tensor, s: Tuple[int, int], kh: int, kw: int, ph: int,
                            pw: int) -> torch.Tensor:
    """The taps of dw from the spectrum of ``r[e] = sum_o dy[o] x[o + e]``: tap i is r[(i - p) mod s]."""
    return weight_from_correlation_nd(spec, s, (kh, kw), (ph, pw))


def weight_from_correlation_nd(spec: torch.Tensor, s: Sequence[int], kernel: Sequence[int],
                               padding: Sequence[int]) -> torch.Tensor:
    """``weight_from_correlation`` over len(s) axes."""
    r = torch.fft.irfftn(spec, s=s, dim=_dims(s))
    for axis, (k, p, n) in enumerate(zip(kernel, padding, s), start=r.dim() - len(s)):
        r = r.index_select(axis, _wrapped(k, -p, n, spec.device))
    return r


def channel_chunks(n: int, c: int, s: Sequence[int], real_dtype: torch.dtype):
    """Slices over channels whose spectra (N planes or volumes each) stay near CHUNK_BYTES."""
    itemsize = 2 * torch.empty((), dtype=real_dtype).element_size()
    per_channel = max(1, n) * math.prod(s[:-1]) * (s[-1] // 2 + 1) * itemsize
    step = max(1, CHUNK_BYTES // per_channel)
    return [slice(start, min(start + step, c)) for start in range(0, c, step)]
