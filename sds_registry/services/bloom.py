"""A Bloom filter of the keys a first load has stored, so its uniqueness checks probe the database only for keys
it may already hold. Pure; holds no keys, only bits.

``add(key)`` is never False for a key added before (no false negatives), and True for a new key one or two
times in a hundred (the load looks those up in the one query a chunk makes per kind of key anyway). A key's
4 bits lie in one 64-bit word (a "blocked" filter: Putze, Sanders and Singler, 2007), so a check is one word
read and one compare: the load checks millions of keys in plain Python. Memory stays bounded without knowing
the input's size up front: a layer holds CAPACITY keys at first, and when it is full a layer of twice the
capacity is added (a "scalable" filter: Almeida et al., 2007), each at BITS_PER_KEY bits a key: about 1.5 MiB
per million keys. Python's ``hash`` of a string is fixed for the life of a process, which is all a filter
lives.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable

CAPACITY = 1 << 20  # keys in the first layer
BITS_PER_KEY = 12  # 1-2% false positives
_MASK64 = (1 << 64) - 1
_LOW = (1 << 40) - 1  # the hash's bits that pick the word (the top 24 pick the bits in it)


def _bits(h: int) -> int:
    """The 4 bits of a key's word, from the hash's top 24 bits (the word index takes the low 40)."""
    return 1 << (h >> 40 & 63) | 1 << (h >> 46 & 63) | 1 << (h >> 52 & 63) | 1 << (h >> 58)


class KeyFilter:
    """Keys seen so far: ``add`` answers "maybe seen before" (True) or "certainly new" (False)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.layers: list[tuple[array[int], int]] = []  # (words, how many)
        self.capacity = 0
        self.count = 0
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        words = max(capacity * BITS_PER_KEY // 64, 1)
        self.layers.append((array("Q", bytes(8 * words)), words))
        self.capacity += capacity

    def add(self, key: Hashable) -> bool:
        """Add ``key``; whether it may have been added before."""
        h = hash(key) & _MASK64
        bits = 1 << (h >> 40 & 63) | 1 << (h >> 46 & 63) | 1 << (h >> 52 & 63) | 1 << (h >> 58)  # _bits, inline
        words, n = self.layers[-1]
        i = (h & _LOW) % n
        old = words[i]
        if self.count < self.capacity:
            words[i] = old | bits
            self.count += 1
            if old & bits == bits:
                return True
            return len(self.layers) > 1 and any(w[(h & _LOW) % m] & bits == bits for w, m in self.layers[:-1])
        seen = any(w[(h & _LOW) % m] & bits == bits for w, m in self.layers)
        self._grow(self.capacity)  # full: a layer doubling what the filter holds takes the key
        words, n = self.layers[-1]
        words[(h & _LOW) % n] |= bits
        self.count += 1
        return seen

    def __contains__(self, key: Hashable) -> bool:
        h = hash(key) & _MASK64
        bits = _bits(h)
        return any(w[(h & _LOW) % m] & bits == bits for w, m in self.layers)

    @property
    def nbytes(self) -> int:
        return sum(words.itemsize * len(words) for words, _ in self.layers)
