"""Several data sources in one run, each batch drawn whole from one of them (OmniMAE's images + clips).

    data:
      source: mixed
      sources:
        image: {source: image_folder, root: /data/images, img_size: 224}
        video: {source: video_files, root: /data/clips}
      repeats: {image: 1.0, video: 2.0}     # passes over each source per epoch (default 1)

The names (`image`, `video`) are the model's modalities: an item of source `name` is
`({name: x}, label)`, so a batch is a one-key modality dict (`core.multimodal`'s batches). The
engine draws every optimizer step's batch from one source (`tasks.train.loader.source_sampler`): an epoch
is the batches of every source, interleaved at random, in proportion to `len × repeat`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from anymae.core.config import ConfigError
from anymae.datasets.contract import DatasetView, SampleDataset, as_samples
from anymae.datasets.sources import SOURCES, build_dataset


class SourceItems(DatasetView):
    """Several datasets end to end; item i is `({name_s: x}, label)` of the source s holding it.

    Args:
        sources: name -> dataset (the name keys the modality dict of its items).
        repeats: name -> repeat factor (passes over that source per epoch; 1 when not given).
    """

    def __init__(self, sources: dict[str, Dataset], repeats: dict[str, float] | None = None) -> None:
        if not sources:
            raise ValueError("SourceItems: expected at least one source")
        unknown = sorted(set(repeats or {}) - set(sources))
        if unknown:
            raise ValueError(f"repeat factors for unknown sources {unknown}; the sources are {list(sources)}")
        self.names = list(sources)
        self.repeats = [float((repeats or {}).get(name, 1.0)) for name in self.names]
        self.sources: list[SampleDataset] = [as_samples(d) for d in sources.values()]
        self.starts = [0]
        for d in self.sources:
            self.starts.append(self.starts[-1] + len(d))
        super().__init__(self.sources[0])

    def __len__(self) -> int:
        return self.starts[-1]

    @property
    def sizes(self) -> list[int]:
        """Items per source, in order."""
        return [len(d) for d in self.sources]

    def collate_x(self, xs: list[Any]) -> Any:
        """B one-key dicts of one source -> {name: that source's collated batch} (batches never mix sources)."""
        names = {next(iter(x)) for x in xs}
        if len(names) != 1:
            raise ValueError(f"a batch mixes the sources {sorted(names)}; batch with one source per step")
        name = names.pop()
        return {name: self.sources[self.names.index(name)].collate_x([x[name] for x in xs])}

    def locate(self, index: int) -> tuple[int, int]:
        """Global index -> (source, index within it)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        s = bisect.bisect_right(self.starts, index) - 1
        return s, index - self.starts[s]

    def __getitem__(self, index: int) -> tuple[dict[str, Any], Any]:
        s, j = self.locate(index)
        x, label, *rest = self.sources[s][j]
        return ({self.names[s]: x}, label, *rest)  # type: ignore[return-value]

    @property  # type: ignore[override]
    def labels(self) -> None:
        return None

    @property  # type: ignore[override]
    def decode_cache(self) -> None:
        return None  # each source keeps its own

    @property  # type: ignore[override]
    def stream(self) -> None:
        return None

    def set_epoch(self, epoch: int) -> None:
        for d in self.sources:
            d.set_epoch(epoch)

    def skipped(self) -> int:
        return sum(d.skipped() for d in self.sources)

    def skip_report(self) -> str:
        return "; ".join(r for r in (d.skip_report() for d in self.sources) if r)

    def skipped_indices(self) -> list[int]:
        return [self.starts[s] + j for s, d in enumerate(self.sources) for j in d.skipped_indices()]


@dataclass
class MixedSource:
    """`data.source: mixed`: named sub-sources (each a `data:` section) and their repeat factors."""

    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: dict[str, float] = field(default_factory=dict)


@SOURCES.register("mixed", config=MixedSource, modality="any")
def _mixed(cfg: MixedSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    if not cfg.sources:
        raise ConfigError("data.sources: a mixed source needs at least one named sub-source, e.g. "
                          "{image: {source: image_folder, root: DIR}, video: {source: video_files, root: DIR}}")
    built = {}
    for name, section in cfg.sources.items():
        if not isinstance(section, dict) or "source" not in section:
            raise ConfigError(f"data.sources.{name}: expected a data section with a `source`, got {section!r}")
        built[name] = build_dataset(section, split=split, augment=augment, model_config=model_config)  # type: ignore[arg-type]
    try:
        return SourceItems(built, cfg.repeats)
    except ValueError as err:
        raise ConfigError(f"data.repeats: {err}") from None
