"""Robustness to missing channels: one fine-tuned classifier scored on listed channel subsets.

The protocol of the multi-channel papers (ChannelViT, DiChaViT, ChA-MAEViT: e.g. JUMP-CP tested
on all 8 channels and on the 5 fluorescence ones, So2Sat on all 18 and on the 8 Sentinel-1
bands): the same model, the same test samples, only the channels fed to it change. Each subset
is a list of channel names of the model; every test sample must hold them all.

    anymae channel-subsets --checkpoint runs/ft/last.pt --subset ch0,ch1,ch2 --subset ch0,ch1 \\
        data.source=multichannel_files data.root=test/
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from anymae.core.config import ConfigError, load_config
from anymae.core.registry import create_model
from anymae.datasets.contract import DatasetView
from anymae.datasets.sources import build_dataset
from anymae.modalities.multichannel import ChannelStack, channel_ids, collate_stacks
from anymae.tasks.train.checkpoint import load_checkpoint, load_state_dict_checked
from anymae.tasks.finetune.classifier import Classifier
from anymae.tasks.finetune.run import evaluate_classifier
from anymae.tasks.train.config import EvalRunConfig


class ChannelSubset(DatasetView):
    """A view of a multi-channel dataset that feeds only the channels `ids`, in that order.

    Args:
        dataset: items `(ChannelStack C×H×W, label)`.
        ids: model channel ids to keep; each sample must hold all of them.
        names: their names (for messages).
    """

    def __init__(self, dataset: Dataset, ids: Sequence[int], names: Sequence[str]) -> None:
        super().__init__(dataset)  # the rest of the dataset contract is `dataset`'s
        self.ids, self.names = list(ids), list(names)

    collate_x = staticmethod(collate_stacks)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[ChannelStack, Any]:
        x, label = self.dataset[index][:2]
        held = x.channels.tolist()
        lacking = [n for i, n in zip(self.ids, self.names) if i not in held]
        if lacking:
            raise ValueError(f"sample {index} has no channel(s) {lacking}; it holds channel ids {held}")
        return x.select([held.index(i) for i in self.ids]), label


def subset_name(names: Sequence[str]) -> str:
    return "+".join(names)


def evaluate_channel_subsets(
    classifier: nn.Module,
    dataset: Dataset,
    subsets: Sequence[Sequence[str]],
    *,
    channel_names: Sequence[str],
    batch_size: int = 64,
    num_workers: int = 0,
) -> dict[str, float]:
    """Top-1 (%) of `classifier` on `dataset` fed each channel subset.

    Args:
        classifier: maps a ChannelStack batch to logits.
        dataset: labelled multi-channel items.
        subsets: lists of channel names.
        channel_names: the model's channel names (id = position).

    Returns:
        {"name+name+...": top-1 %} in the order of `subsets`.
    """
    if not subsets:
        raise ValueError("channel subsets: expected at least one subset of channel names")
    results: dict[str, float] = {}
    for names in subsets:
        ids = channel_ids(list(names), channel_names, where=f"subset {list(names)}")
        view = ChannelSubset(dataset, ids, names)
        results[subset_name(names)] = evaluate_classifier(
            classifier, view, batch_size=batch_size, num_workers=num_workers, precision="fp32"
        )
    return results


def load_finetuned(checkpoint: str) -> Classifier:
    """The classifier saved by `anymae finetune` (its `last.pt`), keys checked, in eval mode."""
    state = load_checkpoint(checkpoint)
    cfg = (state.get("config") or {}).get("model") if isinstance(state, dict) else None
    if not isinstance(cfg, dict) or "model" not in cfg or "num_classes" not in cfg:
        raise ConfigError(f"{checkpoint}: not a fine-tuning checkpoint (no classifier config inside)")
    body_cfg = dict(cfg["model"])
    body = create_model(body_cfg.pop("name"), **body_cfg)
    body.decoder = None
    extra = {"head": cfg["head"]} if "head" in cfg else {}
    classifier = Classifier(body, int(cfg["num_classes"]), pool=cfg.get("pool", "mean"), modality=cfg.get("modality"),
                            **extra)
    load_state_dict_checked(classifier, state["model"])
    return classifier.eval()


@dataclass
class ChannelSubsetsConfig:
    """`anymae channel-subsets`: a fine-tuned checkpoint, labelled test data, the subsets."""

    checkpoint: str
    data: dict[str, Any]
    subsets: list[list[str]] = field(default_factory=list)
    batch_size: int = 64
    run: EvalRunConfig = field(default_factory=EvalRunConfig)  # run.device, run.num_workers
    out: str | None = None  # `anymae channel-subsets` also writes the results here as JSON


def load_channel_subsets_config(path: str | None, overrides: list[str]) -> ChannelSubsetsConfig:
    return load_config(ChannelSubsetsConfig, path, overrides)


def run_channel_subsets(cfg: ChannelSubsetsConfig) -> dict[str, float]:
    """Load the fine-tuned classifier and the test split, score every subset (all channels if none)."""
    from anymae.tasks.train.distributed import resolve_device

    classifier = load_finetuned(cfg.checkpoint).to(resolve_device(cfg.run.device))
    names = list(classifier.config["model"].get("channels") or [])
    if not names:
        raise ConfigError(f"{cfg.checkpoint}: the model has no channel names (not a multi-channel model)")
    data = build_dataset(cfg.data, split="test", augment=False, model_config=classifier.config["model"])
    subsets = cfg.subsets or [list(getattr(data, "use", names))]
    for subset in subsets:
        try:
            channel_ids(subset, names, where=f"subsets: {subset}")
        except ValueError as err:
            raise ConfigError(str(err)) from None
    return evaluate_channel_subsets(
        classifier, data, subsets, channel_names=names, batch_size=cfg.batch_size, num_workers=cfg.run.num_workers
    )


def parse_subsets(texts: Sequence[str]) -> list[list[str]]:
    """CLI form `a,b,c` -> ["a", "b", "c"], one subset per argument."""
    return [[n.strip() for n in t.split(",") if n.strip()] for t in texts]

