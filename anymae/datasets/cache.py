"""Decoded files kept in memory: each file of a small dataset is decoded once per run, while the
augmentations applied after decoding stay random per sample.

The seam is the reader's deterministic step. A reader whose items are ``augment(decode(file))``,
``decode`` depending on the file alone (image -> RGB picture, audio -> resampled waveform, point
file -> cloud, channel file -> array), reads through a ``DecodeCache``:

    self.decode_cache = DecodeCache(self._decode, len(self.samples), f"ImageFiles({root})")
    ...
    picture = self.decode_cache(j)          # decoded now, or a copy of the decoded value

and exposes it as the dataset contract's ``decode_cache`` member (None by default, forwarded by
every wrapper). A video file's decoding depends on the sampled clip, so video readers decode
only the clip's frames without a cache, and hold the whole decoded video with one (sized from
the file's header, not by decoding: ``size_of``). Readers whose data is already in memory have
none.

``prepare_cache(dataset, mode, limit_mb)`` (the engine calls it before its loader starts) decides
(``run.cache``: true, false, or "auto" = true when the decoded size, estimated from the first
items, is at most ``limit_mb``), fills the cache in the main process and returns the line for the
log. Filling before the loader's worker processes start lets forked workers share the decoded
values instead of each decoding and holding its own copy (with the "spawn" start method each
worker receives a copy).

Values are stored as decoded and handed out as copies (numpy arrays, tensors, PIL images), so an
augmentation that works in place never changes the cache: a cached run reads exactly the items
of an uncached one. A file that fails to decode (``DataError``) is not cached; the reader raises
or skips it as it does without a cache.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import Tensor

from anymae.datasets.contract import SampleDataset, dataset_name
from anymae.datasets.skips import DataError

MIB = 1 << 20
SAMPLE_ITEMS = 8  # items decoded to estimate the size of the whole dataset (run.cache="auto")


def _pil_image(value: Any) -> bool:
    module = sys.modules.get("PIL.Image")  # a PIL image exists only once PIL is imported
    return module is not None and isinstance(value, module.Image)


def decoded_bytes(value: Any) -> int:
    """Memory held by a decoded value: arrays, tensors, PIL images, and tuples / lists / dicts of them."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if _pil_image(value):
        per_band = 4 if value.mode in ("I", "F") else 2 if value.mode.startswith("I;16") else 1
        return value.width * value.height * len(value.getbands()) * per_band
    if isinstance(value, (tuple, list)):
        return sum(decoded_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(decoded_bytes(v) for v in value.values())
    return sys.getsizeof(value)


def fresh(value: Any) -> Any:
    """A copy of ``value`` that its user may change in place (immutable leaves are shared)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Tensor):
        return value.clone()
    if _pil_image(value):
        return value.copy()
    if isinstance(value, (tuple, list)):
        return type(value)(fresh(v) for v in value)
    if isinstance(value, dict):
        return {k: fresh(v) for k, v in value.items()}
    return value


class DecodeCache:
    """One reader's decoded files by item index: off (every call decodes) until ``fill``.

    Args:
        decode: item index -> decoded value; deterministic (the same value every call) and
            raising ``DataError`` for a file it cannot use.
        size: number of items.
        what: the reader, for the log ("ImageFiles(/data/train)").
        size_of: item index -> the bytes its decoded value will hold, read without decoding it
            (a file's header); ``estimate`` uses it where decoding a sample of items would be
            costly (whole videos). None: ``estimate`` decodes (and keeps) the first items.
    """

    def __init__(
        self, decode: Callable[[int], Any], size: int, what: str, size_of: Callable[[int], int] | None = None
    ) -> None:
        self.decode, self.size, self.what, self.size_of = decode, size, what, size_of
        self.enabled = False
        self._values: dict[int, Any] = {}

    def __call__(self, index: int, copy: bool = True) -> Any:
        """The decoded value of item ``index``: the cached one when filled (a copy unless ``copy`` is
        False: then the caller must not change it in place), else decoded now."""
        if self.enabled and index in self._values:
            return fresh(self._values[index]) if copy else self._values[index]
        return self.decode(index)

    def __contains__(self, index: int) -> bool:
        """Whether item ``index`` is held."""
        return index in self._values

    def __len__(self) -> int:
        """How many items are held."""
        return len(self._values)

    def nbytes(self) -> int:
        """Memory held by the decoded values."""
        return sum(decoded_bytes(v) for v in self._values.values())

    def _hold(self, index: int) -> bool:
        """Decode item ``index`` into the cache (a ``DataError`` leaves it out); True when held."""
        if index not in self._values:
            try:
                self._values[index] = self.decode(index)
            except DataError:
                return False
        return True

    def estimate(self, sample: int = SAMPLE_ITEMS) -> tuple[float, int]:
        """(estimated bytes of the whole dataset decoded, items measured), from the first readable items.

        With ``size_of`` the items are measured without decoding; otherwise the measured items
        stay held (``fill`` does not decode them again). With no readable item among the first
        ``2 × sample`` the estimate is 0 bytes from 0 items.
        """
        if self.size_of is not None:
            sizes: list[int] = []
            for j in range(min(self.size, 2 * sample)):
                try:
                    sizes.append(self.size_of(j))
                except DataError:
                    continue
                if len(sizes) == sample:
                    break
            return (sum(sizes) / len(sizes) * self.size, len(sizes)) if sizes else (0.0, 0)
        held = [j for j in range(min(self.size, 2 * sample)) if self._hold(j)][:sample]
        if not held:
            return 0.0, 0
        per_item = sum(decoded_bytes(self._values[j]) for j in held) / len(held)
        return per_item * self.size, len(held)

    def fill(self) -> int:
        """Decode every item not held yet and turn the cache on; returns how many items failed."""
        failed = sum(not self._hold(j) for j in range(self.size))
        self.enabled = True
        return failed

    def clear(self) -> None:
        """Drop every value and turn the cache off."""
        self._values.clear()
        self.enabled = False


def prepare_cache(dataset: SampleDataset, mode: bool | str, limit_mb: float) -> str:
    """Apply ``run.cache`` = ``mode`` to ``dataset``'s decoded-file cache; returns the line for the log.

    Args:
        dataset: the run's dataset (its ``decode_cache`` member, None when it has none).
        mode: True (fill it), False (leave it off), or "auto" (fill it when the estimated decoded
            size is at most ``limit_mb``).
        limit_mb: the limit of "auto", in MiB.

    Raises:
        ValueError: ``mode`` is True but the dataset has no decoded-file cache.
    """
    cache = dataset.decode_cache
    if mode is False:
        if cache is not None:
            cache.clear()
        return "cache: off (run.cache=false)"
    if cache is None:
        if mode is True:
            raise ValueError(
                f"run.cache=true: {dataset_name(dataset)} has no decoded-file cache (its decoding is random, e.g. "
                "video clips, or its data is in memory already); expected run.cache=auto or false"
            )
        return "cache: none (the data has no decoded-file cache: it is in memory, or decoded at random per sample)"
    if mode == "auto":
        estimate, measured = cache.estimate()
        if estimate > limit_mb * MIB:
            cache.clear()
            return (f"cache: off for {cache.what}: about {estimate / MIB:.0f} MiB decoded ({cache.size} items, "
                    f"estimated from {measured}) is more than run.cache_mb={limit_mb:g}")
    began = time.perf_counter()
    failed = cache.fill()
    unreadable = f"; {failed} unusable, left to the reader" if failed else ""
    return (f"cache: on for {cache.what} (run.cache={'auto' if mode == 'auto' else 'true'}): {len(cache)} items "
            f"decoded in memory, {cache.nbytes() / MIB:.1f} MiB, in {time.perf_counter() - began:.1f} s{unreadable}; "
            "augmentations stay random per sample")
