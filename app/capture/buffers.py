"""Pre-allocated image buffers that hand themselves back when the last user lets go.

A grabber decodes every frame straight into a slot of its pool, and every consumer (sync
buffer, pose worker, recorder, display) shares that one array without copying. A slot is
free again the moment the last array that views it is garbage collected: each handed-out
array is backed by a small `_Lease` object (through `__array_interface__`), which every
view and slice of the array keeps alive, and whose finaliser returns the slot. CPython
frees objects as soon as their reference count drops, so slots come back promptly.

Memory is therefore bounded by the pool's capacity: when every slot is in use because
consumers are slow, `acquire()` answers None and the grabber drops the frame instead of
allocating.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections import deque

import numpy as np

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def keep_large_allocations_out_of_the_heap(threshold: int = 1 << 20) -> bool:
    """Have glibc serve allocations above `threshold` bytes with mmap (process-wide).

    Capture threads allocate many frame-sized temporaries (colour conversions, crops,
    decoder output). glibc raises its mmap threshold to the largest block freed so far,
    after which such blocks come from per-thread heap arenas that fragment, and resident
    memory creeps up for minutes. A fixed threshold returns each block to the system when
    freed, so a long capture runs at a flat footprint. False where this is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError, TypeError):
        return False


class _Lease:
    """Owner of one slot while any array views it; gives the slot back when collected."""

    __slots__ = ("__array_interface__", "_pool", "_slot", "__weakref__")

    def __init__(self, pool: FramePool, slot: int) -> None:
        view = pool._store[slot]
        self._pool = pool  # keeps the block alive as long as a frame uses it
        self._slot = slot
        self.__array_interface__ = {
            "shape": view.shape,
            "typestr": view.dtype.str,
            "data": (view.ctypes.data, False),
            "version": 3,
        }

    def __del__(self) -> None:
        self._pool._free.append(self._slot)


class FramePool:
    """`capacity` buffers of one shape, e.g. (H, W, 3) uint8, allocated once.

    Every page of the block is written at construction, so the pool's memory is resident
    from the start and capture runs at a constant footprint (lazily touched pages would
    make resident memory creep up for minutes as rarer bursts reach deeper slots). Free
    slots are reused last-in first-out, which keeps the hot ones in cache.
    """

    def __init__(self, shape: tuple[int, ...], capacity: int, dtype: np.dtype | type = np.uint8) -> None:
        if capacity < 1:
            raise ValueError("a frame pool needs at least one buffer")
        self.shape = tuple(int(s) for s in shape)
        self.capacity = int(capacity)
        self._store = np.empty((self.capacity, *self.shape), dtype=dtype)
        self._store.fill(0)
        # deque append/pop are atomic in CPython, so a finaliser running on any thread
        # can return a slot without a lock (a lock could deadlock inside acquire()).
        self._free: deque[int] = deque(range(self.capacity - 1, -1, -1))

    def acquire(self) -> np.ndarray | None:
        """A free buffer of `shape`, or None when every buffer is still held."""
        try:
            slot = self._free.pop()
        except IndexError:
            return None
        return np.asarray(_Lease(self, slot))

    @property
    def available(self) -> int:
        """Number of free buffers right now."""
        return len(self._free)
