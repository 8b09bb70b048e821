"""Which frames of a video make a clip: the VideoMAE / VideoMAE V2 sampling rules.

All functions return frame indices (0-based, within `num_total`) and draw from numpy's global RNG,
as the references do; `SeededSamples` seeds it per sample, so a sample's clip depends only on
its seed.

- `dense_train_indices`: pretraining (`VideoMAE._sample_train_indices` + `get_frame_id_list`
  with one segment): a random start, then every `rate`-th frame; the index stops advancing at the
  end of a short video (the last frame repeats).
- `segment_train_indices`: Something-Something (`ssv2.py`): the video is cut into `clip_len`
  equal segments and one random frame is taken from each.
- `dense_test_indices` / `segment_test_indices`: the evaluation views (Kinetics: every
  `rate`-th frame, `num_clips` evenly spaced windows; SSv2: segment starts, centres, ...).
"""

from __future__ import annotations

import numpy as np


def _check(num_total: int, clip_len: int) -> None:
    if num_total < 1 or clip_len < 1:
        raise ValueError(f"cannot sample {clip_len} frames from a video of {num_total} frames")


def dense_train_indices(num_total: int, clip_len: int, rate: int) -> list[int]:
    """`clip_len` frames `rate` apart from a random start (VideoMAE pretraining, num_segments=1)."""
    _check(num_total, clip_len)
    skip = clip_len * rate
    average = num_total - skip + 1
    if average > 0:
        offset = int(np.random.randint(average))
    elif num_total > max(1, skip):
        offset = int(np.random.randint(num_total - skip + 1))
    else:
        offset = 0
    offset += 1  # the reference's 1-based offset
    ids = []
    for _ in range(clip_len):
        ids.append(offset - 1)
        if offset + rate < num_total:
            offset += rate
    return ids


def segment_train_indices(num_total: int, clip_len: int) -> list[int]:
    """One random frame in each of `clip_len` equal segments (VideoMAE's SSv2 training)."""
    _check(num_total, clip_len)
    average = num_total // clip_len
    if average > 0:
        ids = np.arange(clip_len) * average + np.random.randint(average, size=clip_len)
    elif num_total > clip_len:
        ids = np.sort(np.random.randint(num_total, size=clip_len))
    else:
        ids = np.zeros(clip_len, dtype=np.int64)
    return [int(i) for i in ids]


def dense_test_indices(num_total: int, clip_len: int, rate: int, num_clips: int) -> list[list[int]]:
    """`num_clips` windows of `clip_len` frames over every `rate`-th frame, evenly spaced (Kinetics test).

    One clip is the centre window (the reference divides by `num_clips - 1`, defined for >= 2).
    """
    _check(num_total, clip_len)
    every = list(range(0, num_total, rate))
    every += [every[-1]] * max(0, clip_len - len(every))
    span = len(every) - clip_len
    if num_clips == 1:
        starts = [span // 2]
    else:
        step = max(span / (num_clips - 1), 0.0)
        starts = [int(c * step) for c in range(num_clips)]
    return [every[s : s + clip_len] for s in starts]


def segment_test_indices(num_total: int, clip_len: int, num_clips: int) -> list[list[int]]:
    """Clip c takes frame `int(tick * (x + c / num_clips))` of each segment x (SSv2 test: starts, centres)."""
    _check(num_total, clip_len)
    tick = num_total / clip_len
    return [[min(int(tick * x + tick * c / num_clips), num_total - 1) for x in range(clip_len)] for c in range(num_clips)]
