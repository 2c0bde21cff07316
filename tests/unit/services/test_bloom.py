"""The first load's key filter (services/bloom.py): never "new" for a key added before, across its layers;
rarely "seen" for a new key; memory grows with the keys, not up front."""

from __future__ import annotations

from sds_registry.services.bloom import BITS_PER_KEY, KeyFilter


def test_a_key_added_is_always_seen_again_across_layers() -> None:
    f = KeyFilter(4096)
    keys = [("services", f"{n:012d}") for n in range(100_000)]
    first = [f.add(k) for k in keys]
    assert len(f.layers) > 5  # it grew while the keys came
    assert all(k in f for k in keys)
    assert all(f.add(k) for k in keys[::97])
    assert sum(first) < len(keys) / 20  # false positives among new keys: rare


def test_new_keys_are_rarely_taken_for_seen() -> None:
    f = KeyFilter(1 << 14)
    for n in range(1 << 14):
        f.add(("cpa", f"cpa-{n}"))
    others = [("cpa", f"other-{n}") for n in range(50_000)]
    assert sum(k in f for k in others) / len(others) < 0.05
    assert f.nbytes <= 2 * (1 << 14) * BITS_PER_KEY // 8  # about BITS_PER_KEY bits a key
