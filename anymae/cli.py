"""The `anymae` command: a thin layer over the Python API (every command is a function in tasks/).

Every command is one `Command` row below and runs the same way: its settings are a typed config
(the `load_*_config` next to its `run_*` function), filled from `--config FILE`, then the command's
flags, then `key=value` overrides; `--print-config` prints the resolved config and exits. The
flags are shortcuts for keys, the same key in every command:

    --checkpoint PATH   checkpoint=PATH        (every command that reads one)
    --out PATH          run.out_dir=PATH       (commands that write a run directory)
                        out=PATH               (commands that write one file: results JSON, picture, weights)
    --resume            run.resume=true

and `run.device` / `run.num_workers` say where every command computes and how many workers load.

A user error (a config, data, checkpoint or file problem, a diverged run, a missing extra) is
answered with one line on stderr and exit status 2 (config) or 1 (the rest); `--traceback` or
`ANYMAE_TRACEBACK=1` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shlex
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SETTINGS_HELP = """\
Settings: a YAML file (--config) and/or key=value overrides with dotted keys (e.g. optim.blr=1.5e-4
run.device=cpu data.root=/data/train); the flags above set keys too. An unknown key is an error that
lists the valid ones; --print-config prints the resolved settings and exits. Shared keys: checkpoint,
run.device, run.num_workers, run.out_dir (a run directory), out (one output file). Errors are one line
on stderr; --traceback (or ANYMAE_TRACEBACK=1) shows the traceback."""


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one config key: `--checkpoint X` -> `checkpoint="X"`."""

    option: str
    key: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # argparse options (type, action, metavar)
    convert: Callable[[Any], Any] = lambda value: value  # parsed value -> the key's value

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


def _checkpoint(what: str = "pretraining") -> Flag:
    return Flag("--checkpoint", "checkpoint", f"{what} checkpoint (sets checkpoint=...)")


def _out(key: str, what: str) -> Flag:
    return Flag("--out", key, f"{what} (sets {key}=...)")


RESUME = Flag("--resume", "run.resume", "continue run.out_dir/last.pt exactly (sets run.resume=true)",
              {"action": "store_true"})


@dataclass(frozen=True)
class Command:
    """One `anymae` command: where its config lives, how it runs, its flags and help.

    Attributes:
        module, loader: `module.loader(path, overrides)` builds the command's typed config.
        run: config -> exit status (prints the command's report).
        examples: argument lists after `anymae` (tests run each with --print-config).
        positional: the key that bare words (no `=`) set, e.g. `anymae info 'mae_*'`.
    """

    name: str
    help: str
    description: str
    module: str
    loader: str
    run: Callable[[Any], int]
    examples: tuple[tuple[str, ...], ...] = ()
    flags: tuple[Flag, ...] = ()
    positional: str | None = None

    def load(self, path: str | None, overrides: list[str]) -> Any:
        return getattr(importlib.import_module(self.module), self.loader)(path, overrides)


def _write_out(path: str | None, results: Any) -> None:
    """Write a command's results as JSON to `out` (when set), atomically."""
    if path:
        from anymae.core.io import atomic_write

        with atomic_write(path, "w") as f:
            f.write(json.dumps(results, indent=2, default=str))


def _pretrain(cfg: Any) -> int:
    from anymae.tasks.train.pretrain import run_pretrain

    result = run_pretrain(cfg)
    print(f"done: {result.step} steps, last loss {result.last_loss:.4f}; checkpoint {result.checkpoint}")
    return 0


def _finetune(cfg: Any) -> int:
    from anymae.tasks.finetune.run import run_finetune

    print(json.dumps(run_finetune(cfg), indent=2, default=str))
    return 0


def _probe(cfg: Any) -> int:
    from anymae.tasks.evaluate.linear import DEFAULT_BLR
    from anymae.tasks.evaluate.probe import run_probe

    results = run_probe(cfg)
    trained = f"  (final epoch, {cfg.probe.optimizer} blr {cfg.probe.blr or DEFAULT_BLR[cfg.probe.optimizer]:g})"
    for name, top1 in results.items():
        print(f"{name:10} top-1 {top1:6.2f}%" + (trained if name in ("linear", "attentive") else
                                                  "" if name in ("knn", "svm") else "  (final epoch)"))
    _write_out(cfg.out, results)
    return 0


def _retrieval(cfg: Any) -> int:
    from anymae.tasks.evaluate.retrieval import format_table, run_retrieval

    results = run_retrieval(cfg)
    print(format_table(results))
    _write_out(cfg.out, results)
    return 0


def _fewshot(cfg: Any) -> int:
    from anymae.tasks.evaluate.fewshot import run_fewshot

    result = run_fewshot(cfg)
    print(f"few-shot: {result.mean:.2f} ± {result.std:.2f}%  ({result.protocol})")
    _write_out(cfg.out, vars(result))
    return 0


def _probe_nodes(cfg: Any) -> int:
    from anymae.tasks.evaluate.nodes import run_node_probe

    r = run_node_probe(cfg)
    print(f"node probe over {r['seeds']} seeds: final test acc {r['final_mean']:.2f} ± {r['final_std']:.2f}%, "
          f"test acc at best val {r['at_best_val_mean']:.2f} ± {r['at_best_val_std']:.2f}%")
    _write_out(cfg.out, r)
    return 0


def _reconstruct(cfg: Any) -> int:
    from anymae.tasks.pictures.reconstruct import run_reconstruct

    path = run_reconstruct(cfg)
    print(f"wrote {path}" + (f" and {cfg.gif}" if cfg.gif else ""))
    return 0


def _export(cfg: Any) -> int:
    from anymae.tasks.commands.export import run_export

    return run_export(cfg)


def _info(cfg: Any) -> int:
    from anymae.tasks.commands.info import run_info

    print(run_info(cfg))
    return 0


def _stats(cfg: Any) -> int:
    from anymae.tasks.commands.stats import run_stats

    stats = run_stats(cfg)
    print(f"# {stats.num_samples} samples, {stats.count} values per channel (raw inputs, normalize: false)")
    print(stats.yaml_snippet(), end="")
    return 0


def _channel_subsets(cfg: Any) -> int:
    from anymae.tasks.evaluate.channel_subsets import run_channel_subsets

    results = run_channel_subsets(cfg)
    for name, top1 in results.items():
        print(f"{name}: top-1 {top1:6.2f}%")
    _write_out(cfg.out, results)
    return 0


def _demo(cfg: Any) -> int:
    from anymae.tasks.commands.demo import run_demo

    run_demo(cfg.run.out_dir, minutes=cfg.minutes, seed=cfg.run.seed)
    return 0


def _shard(cfg: Any) -> int:
    from anymae.tasks.commands.shard import run_shard, summary

    print(summary(run_shard(cfg), cfg.out))
    return 0


def _subsets(texts: list[str]) -> list[list[str]]:
    from anymae.tasks.evaluate.channel_subsets import parse_subsets

    return parse_subsets(texts)


TINY = "runs/mae_vit_tiny_cpu/last.pt"  # what `anymae pretrain --config configs/mae_vit_tiny_cpu.yaml` writes
EVALUATE = "anymae.tasks.evaluate"
COMMANDS: tuple[Command, ...] = (
    Command("pretrain", "pretrain an MAE from a YAML config",
            "Pretrain an MAE. Multi-GPU / multi-process: torchrun --nproc_per_node N -m anymae pretrain ...\n"
            "Sections: model (name + options, see `anymae info`), data (source + options, see `anymae info`), "
            "optim, run.",
            "anymae.tasks.train.pretrain", "load_pretrain_config", _pretrain,
            (("pretrain", "--config", "configs/mae_vit_tiny_cpu.yaml", "data.root=./images"),
             ("pretrain", "--config", "configs/mae_vit_tiny_cpu.yaml", "--resume")),
            (RESUME, _out("run.out_dir", "run directory"))),
    Command("finetune", "fine-tune a pretrained encoder for classification",
            "Fine-tune with layer-wise lr decay (MAE recipe defaults). Sections: checkpoint, data, val_data, "
            "finetune (num_classes, pool, mixup, ..., optim), run.",
            "anymae.tasks.finetune.run", "load_finetune_config", _finetune,
            (("finetune", "--config", "configs/mae_vit_tiny_cpu_finetune.yaml", "--checkpoint", TINY,
              "data.root=./images", "finetune.num_classes=10"),),
            (_checkpoint(), RESUME, _out("run.out_dir", "run directory"))),
    Command("probe", "k-NN / linear / attentive probes on frozen features",
            "Probe a frozen encoder. Protocols: knn (weighted, cosine), linear (BatchNorm without affine + "
            "Linear; probe.optimizer: adamw by default, lars = the paper's, for batches of 16k), attentive (efficient-probing multi-query attention pooling), svm (linear SVM, "
            "probe.svm_c, probe.svm_pool), prototypical (Bird-MAE: J prototypes per class on the tokens, "
            "probe.prototypes_per_class, probe.prototypical_epochs).",
            f"{EVALUATE}.probe", "load_probe_config", _probe,
            (("probe", "--checkpoint", TINY, "data.source=image_folder", "data.root=train/",
              "test_data.source=image_folder", "test_data.root=val/", "probe.protocols=[knn,linear,attentive]",
              "--out", "probe.json"),),
            (_checkpoint(), _out("out", "results JSON"))),
    Command("retrieval", "cross-modal retrieval (audio <-> video, ...): recall@1/5/10, ranks",
            "Cross-modal retrieval on paired data, both directions (CAV-MAE's protocol): each modality's "
            "modality-only features, mean-pooled, L2-normalized, cosine similarity; recall@1/5/10, mean and "
            "median rank (1-based). Keys: data (changes to the checkpoint's data section, e.g. data.root=clips/), "
            "retrieval.modalities (default [audio, video]), retrieval.match (instance: the item itself; label: "
            "any item of its class), retrieval.init (random: the pretraining's initial weights, the baseline), "
            "retrieval.pool, out (JSON: a2v_r1, v2a_r1, ...).",
            f"{EVALUATE}.retrieval", "load_retrieval_config", _retrieval,
            (("retrieval", "--checkpoint", "runs/cavmae_tiny_cpu/last.pt", "data.root=clips/", "--out", "r.json"),),
            (_checkpoint(), _out("out", "results JSON"))),
    Command("fewshot", "N-way K-shot evaluation over folds (mean ± std)",
            "Few-shot evaluation (Point-MAE's ModelNet40 protocol): per fold, `way` classes, `shot` support "
            "samples from the train split and `query` from the test split. protocol=svm: frozen features + "
            "linear SVM; protocol=finetune: end-to-end fine-tuning per fold into run.out_dir/fold_i "
            "(final-epoch accuracy).",
            f"{EVALUATE}.fewshot", "load_fewshot_config", _fewshot,
            (("fewshot", "--checkpoint", "runs/pointmae_tiny_cpu/last.pt", "data.source=modelnet40_resampled",
              "data.root=mn40/", "fewshot.way=5", "fewshot.shot=10", "--out", "fewshot.json"),),
            (_checkpoint(), _out("out", "results JSON"))),
    Command("probe-nodes", "node classification probe of a graph encoder (GraphMAE)",
            "Logistic regression on frozen full-graph node embeddings (Adam lr 0.01, wd 1e-4, 300 epochs), "
            "mean ± std over seeds of the final-epoch test accuracy and of the test accuracy at the best "
            "validation epoch.",
            f"{EVALUATE}.nodes", "load_node_probe_config", _probe_nodes,
            (("probe-nodes", "--checkpoint", "runs/graphmae_gat_tiny_cpu/last.pt", "data.source=graph_folder",
              "data.root=data/cora"),),
            (_checkpoint(), _out("out", "results JSON"))),
    Command("reconstruct", "PNG of input | masked | reconstruction",
            "Write a reconstruction picture. For norm_pix models the hidden patches are mapped back with the "
            "input patch's own mean/variance (said in the picture), and the normalized prediction is shown "
            "too. data.key=value changes the data section read (the checkpoint's own by default).",
            "anymae.tasks.pictures.reconstruct", "load_reconstruct_config", _reconstruct,
            (("reconstruct", "--checkpoint", TINY, "--input", "photos/", "--out", "recon.png"),),
            (_checkpoint(), _out("out", "the PNG"),
             Flag("--input", "input", "an image (or clip, cloud, ...) file or a folder; default: the run's own "
                  "data (evaluation split) (sets input=...)"),
             Flag("--num", "num", "samples (rows) (sets num=...)", {"type": int}),
             Flag("--seed", "seed", "seed of the masks (sets seed=...)", {"type": int}),
             Flag("--gif", "gif", "also write an animated GIF of the panels (video clips), e.g. recon.gif "
                  "(sets gif=...)"))),
    Command("export", "export weights (timm, safetensors, official MAE)",
            "Export: 'timm' = encoder state dict for timm's VisionTransformer (strict load), 'safetensors' = "
            "the same as safetensors with the config in its metadata, 'official' = the full model in its "
            "reference release format.",
            "anymae.tasks.commands.export", "load_export_config", _export,
            (("export", "--checkpoint", TINY, "--format", "timm", "--out", "encoder.pth"),),
            (_checkpoint(), _out("out", "the file written (a multi-modal model: a folder, one file per modality)"),
             Flag("--format", "format", "timm, safetensors or official (sets format=...)",
                  {"choices": ["timm", "safetensors", "official"]}))),
    Command("info", "list modalities, presets, parameter counts, data sources",
            "List registered models (with trainable parameter counts) and data sources; a bare word is a "
            "shell-style filter of the models (sets pattern=...).",
            "anymae.tasks.commands.info", "load_info_config", _info, (("info", "mae_vit_*"),), (), "pattern"),
    Command("stats", "per-channel mean/std of a dataset's raw inputs (for normalization)",
            "Measure the raw inputs of a data section (built with normalize: false; channel = axis 0 of a "
            "sample) and print the mean/std snippet for the data section. Keys: data, split, max_samples, "
            "batch_size, run, model (model config values the source reads).",
            "anymae.tasks.commands.stats", "load_stats_config", _stats,
            (("stats", "data.source=audio_folder", "data.root=./clips", "model.num_mel_bins=128"),)),
    Command("channel-subsets", "score a fine-tuned multi-channel model on channel subsets",
            "Robustness to missing channels: the same fine-tuned classifier on the same test data, fed only the "
            "listed channels (one --subset per subset, names comma-separated).",
            f"{EVALUATE}.channel_subsets", "load_channel_subsets_config", _channel_subsets,
            (("channel-subsets", "--checkpoint", "runs/chamaevit_finetune/last.pt", "--subset", "dna,er,rna",
              "--subset", "dna,rna", "data.source=multichannel_files", "data.root=test/"),),
            (_checkpoint("fine-tuning"), _out("out", "results JSON"),
             Flag("--subset", "subsets", "a channel subset, names comma-separated; repeat for several "
                  "(default: the data's channels) (sets subsets=...)",
                  {"action": "append", "metavar": "A,B,..."}, _subsets))),
    Command("shard", "write tar shards (WebDataset layout) from any folder source",
            "Shard a data section: each sample's original bytes plus its label (json, and cls for one class) "
            "in tar shards, and a manifest.json (counts, bytes, classes). Every command reads them with "
            "data.source=shards data.root=OUT (the folder, or a brace pattern such as "
            "OUT/train-{000000..000127}.tar). Keys: data (a folder source; data.on_error=skip skips and counts "
            "unreadable files), out, shard.max_count, shard.max_size (bytes), shard.split, shard.prefix, "
            "shard.check, run.num_workers, model (values the source reads for its defaults).",
            "anymae.tasks.commands.shard", "load_shard_config", _shard,
            (("shard", "data.source=image_folder", "data.root=./images", "--out", "shards/",
              "shard.max_count=5000"),),
            (_out("out", "folder for the shards and manifest.json"),)),
    Command("demo", "pretrain a tiny MAE on real photos, evaluate, draw",
            "Pretrain a tiny image MAE on crops of real photographs for a few minutes on the CPU, then "
            "compare it with the same encoder at random init (held-out reconstruction, k-NN, linear "
            "probe) and write reconstruction and embedding pictures.",
            "anymae.tasks.commands.demo", "load_demo_config", _demo,
            (("demo", "--minutes", "5", "--out", "runs/demo"),),
            (_out("run.out_dir", "output directory"),
             Flag("--minutes", "minutes", "pretraining time budget (sets minutes=...)", {"type": float}),
             Flag("--seed", "run.seed", "the demo's seed (sets run.seed=...)", {"type": int}))),
)


def command_overrides(command: Command, args: argparse.Namespace) -> list[str]:
    """The flags given as `key=value` overrides (JSON values: paths stay strings), then the user's."""
    out = []
    for flag in command.flags:
        value = getattr(args, flag.dest)
        if value is not None and value is not False:
            out.append(f"{flag.key}={json.dumps(flag.convert(value))}")
    for text in args.overrides:
        if "=" not in text and command.positional is not None:
            text = f"{command.positional}={json.dumps(text)}"
        out.append(text)
    return out


def run_command(command: Command, args: argparse.Namespace) -> int:
    """Resolve the command's config (file, flags, overrides); print it or run the command."""
    cfg = command.load(args.config, command_overrides(command, args))
    if args.print_config:
        from anymae.core.config import yaml_text

        print(yaml_text(cfg), end="")
        return 0
    return command.run(cfg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anymae",
        description="Masked-autoencoder pretraining on any modality. `anymae COMMAND --help` for each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        examples = "\n".join("  anymae " + shlex.join(e) for e in command.examples)
        heading = "Examples" if len(command.examples) > 1 else "Example"
        text = f"{textwrap.fill(command.description, 100)}\n\n{heading}:\n{examples}\n\n{SETTINGS_HELP}"
        p = sub.add_parser(command.name, help=command.help, description=text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(command_spec=command)
        p.add_argument("--config", help="YAML file with the settings (configs/*.yaml)")
        p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        p.add_argument("--traceback", action="store_true",
                       help="show the traceback of an error (also ANYMAE_TRACEBACK=1) instead of one line")
        for flag in command.flags:
            p.add_argument(flag.option, dest=flag.dest, help=flag.help, **flag.kwargs)
        word = f" | {command.positional}" if command.positional else ""
        p.add_argument("overrides", nargs="*", metavar=f"key=value{word}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [word for word in extra if word.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = [*args.overrides, *extra]  # key=value words given after a flag that follows others
    code = _answer(args)
    if code == 0:  # a failed rank exits at once, so that torchrun stops the others
        _leave_process_group()
    return code


def entry() -> None:
    """``anymae`` / ``python -m anymae``: `main`, then exit with objects frozen (still finalized), which
    skips the interpreter's last full collection (~330k objects after torch and timm: ~1 s)."""
    code = main()
    gc.freeze()
    sys.exit(code)


def _answer(args: argparse.Namespace) -> int:
    """Run the command; a user error is one line on stderr and a non-zero exit (module doc)."""
    if args.traceback or os.environ.get("ANYMAE_TRACEBACK", "") not in ("", "0"):
        return run_command(args.command_spec, args)
    from anymae.core.config import ConfigError
    from anymae.tasks.commands.errors import one_line, user_errors

    try:
        return run_command(args.command_spec, args)
    except user_errors() as err:
        print(f"anymae {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    except KeyboardInterrupt:
        print(f"anymae {args.command}: interrupted", file=sys.stderr)
        return 130


def _leave_process_group() -> None:
    """Under torchrun, after a command that succeeded, leave the process group together with the other ranks."""
    if "torch.distributed" not in sys.modules:  # nothing distributed was started (keeps --help light)
        return
    from anymae.tasks.train.distributed import shutdown

    shutdown()


if __name__ == "__main__":
    entry()
