"""The memory of the mixing windows of :mod:`kerahep.data.batches`: aligned buffers, reused once
nothing refers to them any more.

A streamed reader fills one mixing window at a time (:class:`Window`: a buffer per field, and
where each of its rows goes) and hands out its batches as views of those buffers. Two things
keep that memory cheap:

* alignment: every buffer starts on a 64-byte boundary (:func:`aligned_empty`), so that
  TensorFlow takes the arrays ``from_generator`` yields without copying them (the batches of
  a window stay aligned when a row's bytes are a multiple of 64);
* reuse by reference count: a fresh buffer is new memory, and the kernel faults in and zeroes
  each of its 4 kB pages at the first write, which costs more than placing the rows
  themselves. :class:`Buffers` lends a buffer out whole and takes it back only when nothing
  but itself refers to it (NumPy views keep a reference to the array owning their memory), so
  a buffer is never written while anything can read it, and later epochs write into memory
  already faulted in.

:func:`spec` gives the fields of a tuple of arrays, ``[(row shape, dtype), ...]``: what a
window of such rows holds.

Example:
    >>> import numpy as np
    >>> w = Window.allocate(4, spec((np.zeros((1, 3), np.float32),)), rng=None, buffers=Buffers())
    >>> w.place(0, (np.ones((4, 3), np.float32),))
    >>> w.bufs[0].shape, w.bufs[0].ctypes.data % 64
    ((4, 3), 0)
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["Buffers", "Window", "aligned_empty", "spec"]


def aligned_empty(shape, dtype, align: int = 64) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on an ``align``-byte boundary.

    TensorFlow takes a NumPy array that ``from_generator`` yields without copying it when
    its data are 64-byte aligned (the batches of a window stay aligned when a row's bytes
    are a multiple of 64), which saves a copy of every batch. A buffer is never written
    again once its batches are handed out.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class Buffers:
    """Window buffers of a stream, reused once nothing refers to them any more.

    A fresh buffer of a few MB is new memory: the kernel faults in and zeroes every page at
    its first write, which cost more than placing the rows themselves (hcal_dqm: about
    0.4 ms of CPU per batch of 64 maps). A buffer is lent out whole and taken back only when
    no array refers to it (the batches cut from it, the tensors ``tf.data`` made of it without
    a copy, a window still being filled, a caller's batch): NumPy views keep a reference to
    the array owning the memory, so a reference count of ours alone means it is free. So a
    buffer is still never written while anything can read it. At most ``keep`` free buffers
    are kept (:class:`~kerahep.data.batches.BatchStream`: two windows' worth, less than an
    epoch holds anyway), so that later epochs write into memory already faulted in.
    """

    def __init__(self, keep: int = 6):
        self.keep, self.lent, self.free = int(keep), [], []
        self.lock = threading.Lock()

    def empty(self, shape, dtype, align: int = 64) -> np.ndarray:
        """An ``align``-byte aligned ``np.empty(shape, dtype)``, in a reused buffer when one is free."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self.lock:
            for k in range(len(self.lent) - 1, -1, -1):
                if _unreferenced(self.lent, k):
                    self.free.append(self.lent.pop(k))
            fits = [k for k, raw in enumerate(self.free) if nbytes + align <= raw.nbytes <= 2 * nbytes + 2 * align]
            if fits:
                raw = self.free.pop(min(fits, key=lambda k: self.free[k].nbytes))
            else:  # an eighth more than asked: the windows of the next epoch differ a little in size
                raw = np.empty(nbytes + nbytes // 8 + align, np.uint8)
            del self.free[:max(0, len(self.free) - self.keep)]  # the oldest first
            self.lent.append(raw)
        start = (-raw.ctypes.data) % align
        return raw[start:start + nbytes].view(dtype).reshape(shape)


def _unreferenced(lent: list, k: int) -> bool:
    """Whether the list slot is the only reference to ``lent[k]`` (the other is getrefcount's argument)."""
    return sys.getrefcount(lent[k]) <= 2


@dataclass(eq=False)
class Window:
    """One mixing window: a buffer per field, and where each of its rows goes (``dest``; None: in order)."""

    bufs: tuple
    dest: np.ndarray | None

    @classmethod
    def allocate(cls, n: int, spec, rng: np.random.Generator | None, buffers: Buffers | None = None) -> Window:
        empty = aligned_empty if buffers is None else buffers.empty
        bufs = tuple(empty((n,) + tuple(shape), dtype) for shape, dtype in spec)
        return cls(bufs, rng.permutation(n) if rng is not None else None)

    def place(self, at: int, arrays: tuple) -> None:
        """Rows ``at .. at + len`` of the window (in plan order) are ``arrays``; a scatter when shuffled."""
        k = len(arrays[0])
        where = slice(at, at + k) if self.dest is None else self.dest[at:at + k]
        for buf, a in zip(self.bufs, arrays):
            buf[where] = a

    def rows(self, at: int, k: int) -> tuple:
        """Copies of rows ``at .. at + k`` of the window (in plan order), as placed."""
        where = slice(at, at + k) if self.dest is None else self.dest[at:at + k]
        return tuple(np.array(buf[where]) for buf in self.bufs)


def spec(arrays: tuple) -> list:
    """The fields of ``arrays``, ``[(row shape, dtype), ...]``: what :meth:`Window.allocate` takes."""
    return [(a.shape[1:], a.dtype) for a in arrays]
