"""Turning columns of names into integer codes quickly.

Sorting millions of strings (np.unique) takes seconds; a Python dict lookup per
row takes ~70 ms per million. For numpy unicode arrays there is a faster path:
each fixed-width row is read as integers and reduced to a 64-bit fingerprint by
random linear hashes (one matrix product), and fingerprints are mapped to codes
through a small open-addressing table of the distinct values. Two distinct names
are confused only if their fingerprints agree (about 2^-64 per pair of names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.rating.numerics import IntArray

_MAX_CHARS = 4096
# Fixed random odd multipliers (constants, never mutated): 2 columns per uint32 code
# point for odd widths, 2 columns per uint64 word (two code points) for even widths.
_RNG = np.random.default_rng(20240307)
_COEFS32 = (_RNG.integers(1, 2**32, size=(_MAX_CHARS, 2), dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
_COEFS64 = _RNG.integers(1, 2**63, size=(_MAX_CHARS // 2, 2), dtype=np.uint64) | np.uint64(1)
del _RNG


def is_unicode_array(values: Any) -> bool:
    """A numpy array of fixed-width unicode strings (the fast path)."""
    return isinstance(values, np.ndarray) and values.dtype.kind == "U" and values.ndim == 1


def even_widths(*arrays: NDArray[np.str_]) -> bool:
    """Whether every array stores an even number of characters per row, so the
    faster 64-bit word path gives the same fingerprints for all of them."""
    return all((a.dtype.itemsize // 4) % 2 == 0 for a in arrays)


def fingerprints(values: NDArray[np.str_], *, words64: bool | None = None) -> NDArray[np.uint64]:
    """64-bit fingerprint per row of a 1-d unicode array.

    Trailing padding does not change it, but the two paths differ: compare
    fingerprints only when computed with the same `words64` (default: the width
    is even). The 64-bit path hashes pairs of code points as uint64 words with
    two random odd multipliers and folds the two hashes together (rotate, xor);
    the 32-bit path hashes each code point with two 32-bit multipliers."""
    width = values.dtype.itemsize // 4
    if width > _MAX_CHARS:
        raise ValueError(f"names longer than {_MAX_CHARS} characters")
    use64 = width % 2 == 0 if words64 is None else words64
    if use64 and width % 2:
        raise ValueError("the 64-bit path needs an even width")
    arr = np.ascontiguousarray(values)
    if arr.size == 0 or width == 0:
        return np.zeros(arr.size, dtype=np.uint64)
    if use64:
        words = arr.view(np.uint64).reshape(arr.size, width // 2)
        h = words @ _COEFS64[: width // 2]  # (n, 2) uint64, wrapping arithmetic
        rot = (h[:, 1] << np.uint64(32)) | (h[:, 1] >> np.uint64(32))
        folded: NDArray[np.uint64] = np.asarray(h[:, 0] ^ rot, dtype=np.uint64)
        return folded
    points = arr.view(np.uint32).reshape(arr.size, width)
    h32 = points @ _COEFS32[:width]  # (n, 2) uint32
    out: NDArray[np.uint64] = (h32[:, 0].astype(np.uint64) << np.uint64(32)) | h32[:, 1]
    return out


class _Table:
    """Lookup from fingerprints to codes: a collision-free direct-addressed table
    on a window of fingerprint bits (about 2 k^2 slots for k keys), or sorted
    search when k is too large for that."""

    def __init__(self, keys: NDArray[np.uint64], codes: IntArray) -> None:
        order = np.argsort(keys)
        self.sorted_keys, self.sorted_codes = keys[order], codes[order]
        self.shift: np.uint64 | None = None
        size = 64
        while size < 2 * keys.size * keys.size and size < 2**22:
            size *= 2
        for shift in range(0, 65 - size.bit_length()):
            slot = (keys >> np.uint64(shift)) & np.uint64(size - 1)
            if np.unique(slot).size == keys.size:
                self.shift, self.mask = np.uint64(shift), np.uint64(size - 1)
                self.keys = np.zeros(size, dtype=np.uint64)
                self.codes = np.full(size, -1, dtype=np.intp)
                self.keys[slot] = keys
                self.codes[slot] = codes
                break

    def lookup(self, h: NDArray[np.uint64]) -> IntArray:
        """Code per fingerprint, -1 where the fingerprint is not in the table."""
        if self.shift is None:
            pos = np.minimum(np.searchsorted(self.sorted_keys, h), self.sorted_keys.size - 1)
            hit = self.sorted_keys[pos] == h
            found: IntArray = np.where(hit, self.sorted_codes[pos], -1)
            return found
        slot = h & self.mask if self.shift == 0 else (h >> self.shift) & self.mask
        slot = slot.astype(np.intp)
        out: IntArray = np.where(self.keys[slot] == h, self.codes[slot], -1)
        return out


def factorize_unicode(columns: Sequence[NDArray[np.str_]]) -> tuple[list[str], list[IntArray]]:
    """Sorted distinct names over several unicode columns, and each column's codes.

    Distinct values are learnt from a sample of each column, every row is looked
    up, and any value the sample missed is learnt from the misses; a second full
    lookup is needed only when the first sample missed something."""
    use64 = even_widths(*columns)
    prints = [fingerprints(c, words64=use64) for c in columns]
    found: dict[int, str] = {}

    def learn(col: NDArray[np.str_], p: NDArray[np.uint64], rows: IntArray) -> None:
        new, first = np.unique(p[rows], return_index=True)
        for key, name in zip(new.tolist(), col[rows[first]].tolist(), strict=True):
            found.setdefault(key, str(name))

    for col, p in zip(columns, prints, strict=True):
        learn(col, p, np.arange(0, p.size, max(1, p.size // 4096)))
    while True:
        keys = np.fromiter(found, np.uint64, len(found))
        names = [found[k] for k in keys.tolist()]
        rank = np.argsort(np.argsort(np.array(names, dtype=object), kind="stable"))
        table = _Table(keys, rank.astype(np.intp)) if keys.size else None
        codes = [np.full(p.size, -1, dtype=np.intp) if table is None else table.lookup(p) for p in prints]
        missing = False
        for col, p, c in zip(columns, prints, codes, strict=True):
            miss = np.flatnonzero(c < 0)
            if miss.size:
                missing = True
                learn(col, p, miss if miss.size <= 4096 else miss[:: miss.size // 4096])
        if not missing:
            return sorted(names), codes


def lookup_unicode(values: NDArray[np.str_], names: Sequence[str]) -> IntArray:
    """Codes of `values` in `names` (-1 where a value is not among them)."""
    width = values.dtype.itemsize // 4
    fits = [k for k, name in enumerate(names) if len(name) <= width]
    if len(set(names)) != len(names):
        raise ValueError("duplicate names")
    if not fits or width == 0:
        return np.full(values.size, -1, dtype=np.intp)
    known = fingerprints(np.array([names[k] for k in fits], dtype=values.dtype))
    return _Table(known, np.array(fits, dtype=np.intp)).lookup(fingerprints(values))


def label_codes(values: NDArray[np.str_], labels: Mapping[str, int]) -> NDArray[np.int8]:
    """Small-integer code of each value from a short label -> code mapping (-1 if none).

    A single 32-bit hash per row is enough to tell a handful of labels apart; an
    unknown value passes as a label only if it hits that label's 32-bit hash
    exactly (about 2^-32), so this is for validated enumerations, not names."""
    width = values.dtype.itemsize // 4
    out: NDArray[np.int8] = np.full(values.size, -1, dtype=np.int8)
    arr = np.ascontiguousarray(values)
    if width == 0 or arr.size == 0:
        return out
    coefs = np.ascontiguousarray(_COEFS32[:width, 0])
    h = arr.view(np.uint32).reshape(arr.size, width) @ coefs
    fitting = [lab for lab in labels if len(lab) <= width]
    if not fitting:
        return out
    known = np.array(fitting, dtype=values.dtype).view(np.uint32).reshape(len(fitting), width)
    hashes = known @ coefs
    for shift in range(27):  # a collision-free 6-bit window of the label hashes
        slot_k = (hashes >> np.uint32(shift)) & np.uint32(63)
        if np.unique(slot_k).size == len(fitting):
            break
    else:  # pragma: no cover - fixed constants
        raise RuntimeError("label hashes collide")
    keys = np.zeros(64, dtype=np.uint32)
    codes = np.full(64, -1, dtype=np.int8)
    keys[slot_k] = hashes
    codes[slot_k] = [labels[lab] for lab in fitting]
    slot = (h >> np.uint32(shift)) & np.uint32(63)
    out = np.where(keys[slot] == h, codes[slot], np.int8(-1))
    return out


def lookup_objects(values: Any, lookup: dict[Any, int]) -> IntArray:
    """Codes via a dict, for lists and object arrays (KeyError on unknown names)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return np.fromiter(map(lookup.__getitem__, items), np.intp, len(items))
