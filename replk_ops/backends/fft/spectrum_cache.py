"""Kernel spectra kept between calls: an eval-mode layer transforms only its input, and a training
step's backward reuses its forward's.

One entry per weight tensor, at most ``MAX_ENTRIES`` overall (least recently used dropped first),
each dropped when its weight is freed (a weakref callback), so nothing outlives its weight and a
new map size replaces the old entry instead of adding one. An entry is used only while it provably
describes the weight: the same tensor object, the same storage, the same version counter (every
in-place edit, ``load_state_dict`` and optimizer steps bump it), transform size, padding, dtype and
device, and values equal to the copy taken with the spectrum (which also catches edits through
``.data``, which bypass the version counter). Checking the values costs one pass over the kernel,
far less than its transform.
"""
from __future__ import annotations

import collections
import threading
import weakref
from typing import Callable, NamedTuple, Tuple

import torch

MAX_ENTRIES = 64


class _Entry(NamedTuple):
    ref: weakref.ref
    data_ptr: int
    version: int
    key: Tuple
    values: torch.Tensor
    spectrum: torch.Tensor


class SpectrumCache:
    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._entries: "collections.OrderedDict[int, _Entry]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0  # for tests and curiosity

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _valid(self, weight: torch.Tensor, key: Tuple):
        entry = self._entries.get(id(weight))
        if (entry is not None and entry.ref() is weight and entry.key == key and entry.data_ptr == weight.data_ptr()
                and entry.version == weight._version and torch.equal(entry.values, weight.detach())):
            return entry
        return None

    @staticmethod
    def _key(weight: torch.Tensor, s, padding: Tuple[int, ...]) -> Tuple:
        return (tuple(s), tuple(padding), weight.dtype, weight.device, tuple(weight.shape), tuple(weight.stride()))

    def take(self, weight: torch.Tensor, s, padding: Tuple[int, ...], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The spectrum if an entry is valid, removing the entry (a training step's backward: the
        optimizer changes the weight next); else ``compute()``, not kept."""
        entry = self._valid(weight, self._key(weight, s, padding))
        if entry is None:
            self.misses += 1
            return compute()
        with self._lock:
            if self._entries.get(id(weight)) is entry:
                del self._entries[id(weight)]
        self.hits += 1
        return entry.spectrum

    def get(self, weight: torch.Tensor, s, padding: Tuple[int, ...], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The spectrum if an entry is valid, else ``compute()``, kept for later calls."""
        key = self._key(weight, s, padding)
        ident = id(weight)
        entry = self._valid(weight, key)
        if entry is not None:
            with self._lock:
                if ident in self._entries:
                    self._entries.move_to_end(ident)
            self.hits += 1
            return entry.spectrum
        self.misses += 1
        spectrum = compute()
        values = weight.detach().clone()
        try:
            ref = weakref.ref(weight, self._forget(ident))
        except TypeError:  # a tensor type without weak references: nothing to cache against
            return spectrum
        with self._lock:
            self._entries[ident] = _Entry(ref, weight.data_ptr(), weight._version, key, values, spectrum)
            self._entries.move_to_end(ident)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return spectrum

    def _forget(self, ident: int):
        owner = weakref.ref(self)

        def callback(dead_ref):
            cache = owner()
            if cache is None:
                return
            with cache._lock:
                entry = cache._entries.get(ident)
                if entry is not None and entry.ref is dead_ref:
                    del cache._entries[ident]
        return callback
