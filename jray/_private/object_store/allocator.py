"""First-fit, lowest-address allocator for the object store arena.

The arena is one big shared-memory file; this module only does the
bookkeeping of which byte ranges are in use. It never touches memory.

Why first-fit at the lowest address: a tmpfs page that was already written
once is about 20x faster to write again than a fresh one (the kernel must
allocate and zero fresh pages on first touch). Allocating from the lowest
hole keeps the working set packed at the bottom of the arena, so freed (warm)
space is reused before untouched space above the high-water mark.

Every allocation starts at a multiple of ``alignment`` (64 bytes by default,
what the serialized layout needs for its out-of-band buffers); allocations of
``large_threshold`` bytes or more start on a ``large_alignment`` boundary
(a page) so a reader may map them on their own. Sizes are rounded up to
``alignment`` (a zero-size request still takes ``alignment`` bytes, so every
allocation has a distinct offset).

Holes (free ranges) are kept sorted by address in blocks of at most
``2 * _LOAD`` entries, each block with the size of its largest hole, the way
``sortedcontainers.SortedList`` is built. Finding the neighbours of a freed
range is a ``bisect`` (O(log n)); first-fit skips whole blocks by their max,
so a search looks at O(n / _LOAD + _LOAD) entries: close to O(log n) for the
few thousand holes an object store ever has, with small constants.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right, insort

logger = logging.getLogger(__name__)

_LOAD = 64  # target holes per block; blocks split at 2 * _LOAD


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class Allocator:
    """Hand out aligned byte ranges of ``[0, capacity)``; coalesce on free.

    Not thread-safe: the raylet drives it from one asyncio thread.
    """

    def __init__(
        self,
        capacity: int,
        alignment: int = 64,
        large_alignment: int = 4096,
        large_threshold: int = 1 << 20,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        for name, value in (("alignment", alignment), ("large_alignment", large_alignment)):
            if value <= 0 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two, got {value}")
        if large_alignment < alignment:
            raise ValueError("large_alignment must be >= alignment")
        self._capacity = capacity
        self._alignment = alignment
        self._large_alignment = large_alignment
        self._large_threshold = large_threshold
        self._allocated: dict[int, int] = {}  # offset -> rounded size
        self._used = 0
        # Holes: start -> size, plus the starts sorted in blocks.
        self._hole_size: dict[int, int] = {}
        self._blocks: list[list[int]] = []
        self._firsts: list[int] = []  # _blocks[i][0], for bisect
        self._maxes: list[int] = []  # largest hole size in _blocks[i]
        if capacity > 0:
            self._insert_hole(0, capacity)

    # -- public API -----------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Total bytes managed."""
        return self._capacity

    @property
    def used(self) -> int:
        """Bytes taken by live allocations (after rounding)."""
        return self._used

    @property
    def free_bytes(self) -> int:
        """Bytes in holes (``capacity - used``), possibly fragmented."""
        return self._capacity - self._used

    @property
    def largest_free(self) -> int:
        """Size of the largest hole (0 when full)."""
        return max(self._maxes, default=0)

    @property
    def num_allocations(self) -> int:
        return len(self._allocated)

    @property
    def num_holes(self) -> int:
        return len(self._hole_size)

    def rounded_size(self, size: int) -> int:
        """Bytes an allocation of ``size`` takes (rounded up to the alignment)."""
        return max(_round_up(size, self._alignment), self._alignment)

    def allocation_size(self, offset: int) -> int:
        """Rounded size of the live allocation at ``offset`` (KeyError if none)."""
        return self._allocated[offset]

    def allocate(self, size: int) -> int | None:
        """Return the offset of a new range of at least ``size`` bytes, or None.

        None means no hole is big enough (the store then evicts or spills and
        tries again). The lowest-addressed hole that fits is used.
        """
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        need = self.rounded_size(size)
        align = self._large_alignment if size >= self._large_threshold else self._alignment
        found = self._first_fit(need, align)
        if found is None:
            return None
        bi, i, start, hole = found
        offset = _round_up(start, align)
        end = offset + need
        hole_end = start + hole
        # Carve [offset, end) out of the hole; what is left on either side
        # stays a hole. Holes never touch, so the tail keeps its block slot.
        if offset > start:
            self._resize_at(bi, i, offset - start)
            if end < hole_end:
                self._insert_hole(end, hole_end - end)
        elif end < hole_end:
            self._move_at(bi, i, end, hole_end - end)  # the common case: shrink from the front
        else:
            self._remove_at(bi, i)
        self._allocated[offset] = need
        self._used += need
        return offset

    def free(self, offset: int) -> None:
        """Return the range at ``offset`` to the free list, merging neighbours.

        Raises KeyError for an offset that is not a live allocation.
        """
        try:
            size = self._allocated.pop(offset)
        except KeyError:
            raise KeyError(f"no allocation at offset {offset}") from None
        self._used -= size
        start, end = offset, offset + size
        nxt = self._hole_size.get(end)
        if nxt is not None:
            self._remove_start(end)
            end += nxt
        prev = self._hole_before(start)
        if prev is not None and prev + self._hole_size[prev] == start:
            bi, i = self._locate(prev)
            self._resize_at(bi, i, end - prev)
        else:
            self._insert_hole(start, end - start)

    def holes(self) -> list[tuple[int, int]]:
        """All holes as (start, size), by address (for tests and stats)."""
        return [(s, self._hole_size[s]) for block in self._blocks for s in block]

    def allocations(self) -> list[tuple[int, int]]:
        """All live allocations as (offset, rounded size), by address."""
        return sorted(self._allocated.items())

    # -- hole bookkeeping -------------------------------------------------------
    def _first_fit(self, need: int, align: int) -> tuple[int, int, int, int] | None:
        for bi, block_max in enumerate(self._maxes):
            if block_max < need:
                continue
            for i, start in enumerate(self._blocks[bi]):
                hole = self._hole_size[start]
                if hole >= need and _round_up(start, align) + need <= start + hole:
                    return bi, i, start, hole
        return None

    def _locate(self, start: int) -> tuple[int, int]:
        bi = bisect_right(self._firsts, start) - 1
        block = self._blocks[bi]
        i = bisect_left(block, start)
        return bi, i

    def _hole_before(self, addr: int) -> int | None:
        """Start of the last hole starting below ``addr``, if any."""
        bi = bisect_left(self._firsts, addr) - 1
        if bi < 0:
            return None
        block = self._blocks[bi]
        return block[bisect_left(block, addr) - 1]

    def _insert_hole(self, start: int, size: int) -> None:
        self._hole_size[start] = size
        if not self._blocks:
            self._blocks.append([start])
            self._firsts.append(start)
            self._maxes.append(size)
            return
        bi = max(bisect_right(self._firsts, start) - 1, 0)
        block = self._blocks[bi]
        insort(block, start)
        self._firsts[bi] = block[0]
        if size > self._maxes[bi]:
            self._maxes[bi] = size
        if len(block) > 2 * _LOAD:
            half = block[_LOAD:]
            del block[_LOAD:]
            self._blocks.insert(bi + 1, half)
            self._firsts.insert(bi + 1, half[0])
            self._maxes.insert(bi + 1, 0)
            self._refresh_max(bi)
            self._refresh_max(bi + 1)

    def _remove_start(self, start: int) -> None:
        bi, i = self._locate(start)
        self._remove_at(bi, i)

    def _remove_at(self, bi: int, i: int) -> None:
        block = self._blocks[bi]
        start = block.pop(i)
        size = self._hole_size.pop(start)
        if not block:
            del self._blocks[bi], self._firsts[bi], self._maxes[bi]
            return
        self._firsts[bi] = block[0]
        if size == self._maxes[bi]:
            self._refresh_max(bi)

    def _move_at(self, bi: int, i: int, start: int, size: int) -> None:
        """Replace hole ``i`` of block ``bi`` by a smaller one starting later."""
        block = self._blocks[bi]
        old_size = self._hole_size.pop(block[i])
        block[i] = start
        self._hole_size[start] = size
        if i == 0:
            self._firsts[bi] = start
        if old_size == self._maxes[bi]:
            self._refresh_max(bi)

    def _resize_at(self, bi: int, i: int, size: int) -> None:
        start = self._blocks[bi][i]
        old = self._hole_size[start]
        self._hole_size[start] = size
        if size > self._maxes[bi]:
            self._maxes[bi] = size
        elif old == self._maxes[bi] and size < old:
            self._refresh_max(bi)

    def _refresh_max(self, bi: int) -> None:
        sizes = self._hole_size
        self._maxes[bi] = max(sizes[s] for s in self._blocks[bi])

    def check(self) -> None:
        """Assert the internal invariants (for tests; O(n))."""
        holes = self.holes()
        starts = [s for s, _ in holes]
        assert starts == sorted(starts), "holes out of order"
        assert len(starts) == len(self._hole_size)
        for bi, block in enumerate(self._blocks):
            assert block, "empty block"
            assert self._firsts[bi] == block[0]
            assert self._maxes[bi] == max(self._hole_size[s] for s in block)
        ranges = sorted(
            [(s, n, "hole") for s, n in holes]
            + [(o, n, "alloc") for o, n in self._allocated.items()]
        )
        pos = 0
        prev_kind = ""
        for start, size, kind in ranges:
            assert size > 0, f"empty range at {start}"
            assert start == pos, f"gap or overlap at {start} (expected {pos})"
            assert not (kind == "hole" and prev_kind == "hole"), f"uncoalesced holes at {start}"
            if kind == "alloc":
                assert start % self._alignment == 0, f"misaligned allocation at {start}"
            pos, prev_kind = start + size, kind
        assert pos == self._capacity, f"ranges cover {pos} of {self._capacity} bytes"
        assert self._used == sum(self._allocated.values())
        assert self._used + sum(n for _, n in holes) == self._capacity
