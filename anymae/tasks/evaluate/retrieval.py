"""Cross-modal retrieval (`anymae retrieval`): recall@1/5/10 and ranks, both directions.

As CAV-MAE's `src/retrieval.py`: every item of a folder of paired data (audio + frame of the same
clip) is embedded per modality by that modality's modality-only pass (`model.features(x,
modality=m)`), mean-pooled over the tokens, L2-normalized; the similarity is the cosine (Q×K
matrix). Direction `a2v` queries with each audio and ranks every frame, `v2a` the other way.

Ranks are 1-based: the rank of query i is 1 + the number of candidates scored strictly above its
best positive (`match="instance"`, the reference: the positive is the item itself, the diagonal;
`match="label"`: any candidate of the same class, a looser option for data whose items share only
their label). Recall@k = the share of queries ranked ≤ k. The reference reports the MEDIAN rank
(its `MR = median(ind) + 1`); both the median (`<dir>_median_rank`) and the mean
(`<dir>_mean_rank`) are written. Where the reference's `np.where(sorted == diagonal)` breaks on
ties (several entries per query), ties count here in the query's favour.

Keys: `<q>2<k>_r1`, `_r5`, `_r10`, `_mean_rank`, `_median_rank` with q, k the first letters of the
two modalities (audio / video -> `a2v_r1`, `v2a_r1`), plus `num_items` and `chance_r1` (1 / items).
`retrieval.init=random` scores the same architecture at the random initialization the pretraining
started from (built from the checkpoint's model section under its `run.seed`): the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from anymae.core.config import ConfigError, load_config
from anymae.core.pooling import Pool, check_pool, pool
from anymae.datasets.collate import collate_fn_for
from anymae.datasets.sources import build_dataset
from anymae.tasks.train.config import EvalRunConfig
from anymae.tasks.train.steps import to_device

Match = Literal["instance", "label"]


@dataclass
class RetrievalSettings:
    """What is retrieved: `modalities` = [first, second] (directions first->second and back)."""

    modalities: list[str] = field(default_factory=lambda: ["audio", "video"])
    pool: Pool = "mean"  # CAV-MAE: mean over the tokens
    match: Match = "instance"  # the reference: the item itself; "label": any item of its class
    init: Literal["checkpoint", "random"] = "checkpoint"  # random: the pretraining's initial weights
    batch_size: int = 64


@dataclass
class RetrievalConfig:
    """`anymae retrieval`: a cross-modal checkpoint, paired data, where to write.

    Attributes:
        checkpoint: the pretraining checkpoint (`last.pt`).
        data: changes to the checkpoint's own data section (`data.root=clips/`), key by key.
        retrieval: the settings above.
        out: the results JSON.
    """

    checkpoint: str
    data: dict[str, Any] = field(default_factory=dict)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)
    out: str | None = None


def load_retrieval_config(path: str | None, overrides: list[str]) -> RetrievalConfig:
    return load_config(RetrievalConfig, path, overrides)


def ranks(sim: Tensor, positives: Tensor) -> Tensor:
    """Q×K similarities and Q×K bool positives -> Q 1-based ranks of each query's best positive
    (1 + candidates strictly above it).

    Raises:
        ValueError: a query without any positive.
    """
    if sim.shape != positives.shape or sim.ndim != 2:
        raise ValueError(f"ranks: sim and positives must both be Q×K, got {tuple(sim.shape)} and {tuple(positives.shape)}")
    if not bool(positives.any(dim=1).all()):
        raise ValueError("ranks: every query needs at least one positive candidate")
    best = sim.masked_fill(~positives, float("-inf")).max(dim=1, keepdim=True).values  # Q×1
    return 1 + (sim > best).sum(dim=1)  # Q


def recall_metrics(sim: Tensor, positives: Tensor, prefix: str, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """`{prefix}_r{k}` (share of queries ranked ≤ k), `{prefix}_mean_rank`, `{prefix}_median_rank`."""
    r = ranks(sim, positives).double()  # Q
    out = {f"{prefix}_r{k}": float((r <= k).double().mean()) for k in ks}
    out[f"{prefix}_mean_rank"] = float(r.mean())
    out[f"{prefix}_median_rank"] = float(r.quantile(0.5))  # the reference's np.median (mean of the middle two)
    return out


@torch.no_grad()
def embed(model: nn.Module, loader: Any, modalities: list[str], kind: Pool, device: str | torch.device) -> tuple[dict[str, Tensor], Tensor]:
    """Each modality's L2-normalized pooled modality-only features (N×D each) and the N labels."""
    chunks: dict[str, list[Tensor]] = {m: [] for m in modalities}
    labels = []
    was = model.training
    model.to(device).eval()
    try:
        for batch in loader:
            x = to_device(batch[0], device)
            for m in modalities:
                if m not in x:
                    raise ConfigError(f"retrieval: the data give no {m!r} (they give {sorted(x)}); set "
                                      "retrieval.modalities to two of those")
                feats = model.features(x, modality=m)  # type: ignore[operator]
                chunks[m].append(F.normalize(pool(feats, kind).float(), dim=-1).cpu())  # B×D
            y = torch.as_tensor(batch[1])
            labels.append(y.long() if y.ndim == 1 else torch.full((y.shape[0],), -1))  # multi-label: no class
    finally:
        model.train(was)
    if not labels:
        raise ConfigError("retrieval: the data hold no items")
    return {m: torch.cat(c) for m, c in chunks.items()}, torch.cat(labels)


def retrieval_scores(feats: dict[str, Tensor], labels: Tensor, modalities: list[str], match: Match = "instance") -> dict[str, float]:
    """Both directions' metrics from N×D normalized features per modality (module doc)."""
    first, second = modalities
    n = labels.shape[0]
    if match == "instance":
        positives = torch.eye(n, dtype=torch.bool)
    elif match == "label":
        if bool((labels < 0).any()):
            raise ConfigError("retrieval.match=label needs labelled data (class folders); these items are unlabeled")
        positives = labels[:, None] == labels[None, :]
    else:
        raise ConfigError(f"retrieval.match={match!r}: expected 'instance' or 'label'")
    sim = feats[first] @ feats[second].T  # N×N cosine (rows: first's queries)
    out: dict[str, Any] = {"num_items": n, "chance_r1": float(positives.double().sum(1).mean() / n), "match": match}
    out.update(recall_metrics(sim, positives, f"{first[0]}2{second[0]}"))
    out.update(recall_metrics(sim.T, positives.T, f"{second[0]}2{first[0]}"))
    return out


def run_retrieval(cfg: RetrievalConfig) -> dict[str, Any]:
    """Load the checkpoint (or its initial weights), embed the data section's items, score both directions."""
    from anymae.tasks.pictures.reconstruct import _merged
    from anymae.tasks.train.checkpoint import load_checkpoint
    from anymae.tasks.train.distributed import resolve_device
    from anymae.tasks.train.pretrain import build_model, model_from_state

    s = cfg.retrieval
    check_pool(s.pool, where="retrieval.pool")
    if len(s.modalities) != 2 or s.modalities[0] == s.modalities[1]:
        raise ConfigError(f"retrieval.modalities={s.modalities!r}: expected two different modalities, e.g. [audio, video]")
    state = load_checkpoint(cfg.checkpoint)
    if s.init == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(state["config"].get("run", {}).get("seed", 0)))
            model = build_model(dict(state["config"]["model"])).eval()
    else:
        model = model_from_state(state, cfg.checkpoint)
    names = getattr(model.tokenizer, "modalities", None)
    missing = [m for m in s.modalities if names is None or m not in names]
    if missing:
        raise ConfigError(f"retrieval.modalities: the model has no modality {missing} (it has {list(names or ())})")
    section = _merged(dict(state["config"].get("data", {})), cfg.data)
    data = build_dataset(section, split="test", augment=False, model_config=model.config)
    loader = DataLoader(data, batch_size=s.batch_size, shuffle=False, num_workers=cfg.run.num_workers,
                        collate_fn=collate_fn_for(data))
    feats, labels = embed(model, loader, s.modalities, s.pool, resolve_device(cfg.run.device))
    return {**retrieval_scores(feats, labels, s.modalities, s.match), "init": s.init}


def format_table(results: dict[str, Any]) -> str:
    """The printed table: one row per direction."""
    dirs = sorted({k[:3] for k in results if k.endswith("_r1") and k[1] == "2"})
    lines = [f"{'direction':10} {'R@1':>7} {'R@5':>7} {'R@10':>7} {'mean rank':>10} {'median rank':>12}"]
    for d in dirs:
        lines.append(f"{d:10} {results[d + '_r1']:7.3f} {results[d + '_r5']:7.3f} {results[d + '_r10']:7.3f} "
                     f"{results[d + '_mean_rank']:10.2f} {results[d + '_median_rank']:12.1f}")
    lines.append(f"{results['num_items']} items, match={results['match']}, init={results.get('init', 'checkpoint')}, "
                 f"chance R@1 {results['chance_r1']:.3f}")
    return "\n".join(lines)
