"""The `anymae` command: a thin layer over the Python API (every command is a function in tasks/)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

EPILOG_OVERRIDES = """\
Settings: a YAML file (--config) and/or key=value overrides with dotted keys, e.g.
  optim.blr=1.5e-4 optim.batch_size=64 run.out_dir=runs/x data.root=/data/train model.norm_pix_loss=true
An unknown key is an error that lists the valid ones."""


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from anymae.tasks.train.pretrain import load_pretrain_config, run_pretrain

    overrides = list(args.overrides) + (["run.resume=true"] if args.resume else [])
    cfg = load_pretrain_config(args.config, overrides)
    if args.print_config:
        from anymae.core.config import to_dict
        import yaml

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    result = run_pretrain(cfg)
    print(f"done: {result.step} steps, last loss {result.last_loss:.4f}; checkpoint {result.checkpoint}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from anymae.tasks.finetune.run import load_finetune_config, run_finetune

    cfg = load_finetune_config(args.config, list(args.overrides) + (["run.resume=true"] if args.resume else []))
    result = run_finetune(cfg)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from anymae.tasks.evaluate.probe import load_probe_config, run_probe

    overrides = list(args.overrides)
    if args.checkpoint:
        overrides.insert(0, f"checkpoint={args.checkpoint}")
    cfg = load_probe_config(args.config, overrides)
    results = run_probe(cfg)
    for name, top1 in results.items():
        print(f"{name:10} top-1 {top1:6.2f}%  (final epoch)" if name not in ("knn", "svm") else f"{name:10} top-1 {top1:6.2f}%")
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(results, indent=2))
    return 0


def _cmd_fewshot(args: argparse.Namespace) -> int:
    from anymae.tasks.evaluate.fewshot import load_fewshot_config, run_fewshot

    overrides = list(args.overrides)
    if args.checkpoint:
        overrides.insert(0, f"checkpoint={args.checkpoint}")
    cfg = load_fewshot_config(args.config, overrides)
    result = run_fewshot(cfg)
    print(f"few-shot: {result.mean:.2f} ± {result.std:.2f}%  ({result.protocol})")
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(vars(result), indent=2))
    return 0


def _cmd_probe_nodes(args: argparse.Namespace) -> int:
    from anymae.tasks.evaluate.nodes import load_node_probe_config, run_node_probe

    overrides = ([f"checkpoint={args.checkpoint}"] if args.checkpoint else []) + list(args.overrides)
    r = run_node_probe(load_node_probe_config(args.config, overrides))
    print(f"node probe over {r['seeds']} seeds: final test acc {r['final_mean']:.2f} ± {r['final_std']:.2f}%, "
          f"test acc at best val {r['at_best_val_mean']:.2f} ± {r['at_best_val_std']:.2f}%")
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from anymae.tasks.pictures.reconstruct import reconstruct_checkpoint

    path = reconstruct_checkpoint(
        args.checkpoint, args.out, inputs=args.input, data_overrides=list(args.overrides), num=args.num, seed=args.seed,
        gif=args.gif,
    )
    print(f"wrote {path}" + (f" and {args.gif}" if args.gif else ""))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from anymae.tasks.interop.export import export_model, timm_kwargs
    from anymae.tasks.train.pretrain import load_pretrained

    model = load_pretrained(args.checkpoint)
    path = export_model(model, args.out, args.format)
    print(f"wrote {path} ({args.format})")
    if args.format != "official":
        kwargs = ", ".join(f"{k}={v!r}" for k, v in timm_kwargs(model.config).items())
        print(f'load with: timm.create_model("vit_base_patch16_224", pretrained=False, {kwargs})')
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from anymae.core.config import describe
    from anymae.datasets.sources import SOURCES
    from anymae.tasks.commands.info import format_rows, model_rows

    print(format_rows(model_rows(args.pattern)))
    print("\ndata sources (data.source=...):")
    for name, (cls, _) in sorted(SOURCES.items()):
        print(f"  {name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        print("    " + describe(cls).replace("\n", "\n    "))
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from anymae.tasks.commands.stats import load_stats_config, run_stats

    stats = run_stats(load_stats_config(args.config, list(args.overrides)))
    print(f"# {stats.num_samples} samples, {stats.count} values per channel (raw inputs, normalize: false)")
    print(stats.yaml_snippet(), end="")
    return 0


def _cmd_channel_subsets(args: argparse.Namespace) -> int:
    from anymae.tasks.evaluate.channel_subsets import load_channel_subsets_config, parse_subsets, run_channel_subsets

    overrides = list(args.overrides)
    if args.checkpoint:
        overrides.insert(0, f"checkpoint={args.checkpoint}")
    if args.subsets:
        overrides.append(f"subsets={json.dumps(parse_subsets(args.subsets))}")
    cfg = load_channel_subsets_config(args.config, overrides)
    results = run_channel_subsets(cfg)
    for name, top1 in results.items():
        print(f"{name}: top-1 {top1:6.2f}%")
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(results, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from anymae.tasks.commands.demo import run_demo

    run_demo(args.out, minutes=args.minutes, seed=args.seed)
    return 0


def _add(sub: Any, name: str, fn: Callable[[argparse.Namespace], int], help_: str, description: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(fn=fn)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anymae",
        description="Masked-autoencoder pretraining on any modality. `anymae COMMAND --help` for each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add(sub, "pretrain", _cmd_pretrain, "pretrain an MAE from a YAML config",
             "Pretrain an MAE. Multi-GPU / multi-process: torchrun --nproc_per_node N -m anymae pretrain ...\n\n"
             "Example: anymae pretrain --config configs/mae_vit_tiny_cpu.yaml data.root=./images\n\n"
             + EPILOG_OVERRIDES + "\nSections: model (name + options, see `anymae info`), data (source + "
             "options, see `anymae info`), optim, run.")
    p.add_argument("--config", help="YAML run config (configs/*.yaml)")
    p.add_argument("--resume", action="store_true", help="continue run.out_dir/last.pt exactly")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value")

    p = _add(sub, "finetune", _cmd_finetune, "fine-tune a pretrained encoder for classification",
             "Fine-tune with layer-wise lr decay (MAE recipe defaults).\n\n"
             "Example: anymae finetune --config configs/finetune_vit_tiny_cpu.yaml checkpoint=runs/x/last.pt\n\n"
             + EPILOG_OVERRIDES)
    p.add_argument("--config", help="YAML fine-tuning config")
    p.add_argument("--resume", action="store_true", help="continue run.out_dir/last.pt exactly")
    p.add_argument("overrides", nargs="*", metavar="key=value")

    p = _add(sub, "probe", _cmd_probe, "k-NN / linear / attentive probes on frozen features",
             "Probe a frozen encoder. Protocols: knn (weighted, cosine), linear (BatchNorm without affine + "
             "Linear, LARS), attentive (efficient-probing multi-query attention pooling), svm (linear SVM, "
             "probe.svm_c, probe.svm_pool), prototypical (Bird-MAE: J prototypes per class on the tokens, "
             "probe.prototypes_per_class, probe.prototypical_epochs).\n\n"
             "Example: anymae probe --checkpoint runs/x/last.pt data.source=image_folder data.root=train/ \\\n"
             "           test_data.source=image_folder test_data.root=val/ 'probe.protocols=[knn,linear,attentive]'\n\n"
             + EPILOG_OVERRIDES)
    p.add_argument("--config", help="YAML probe config")
    p.add_argument("--checkpoint", help="pretraining checkpoint (sets checkpoint=...)")
    p.add_argument("overrides", nargs="*", metavar="key=value")

    p = _add(sub, "fewshot", _cmd_fewshot, "N-way K-shot evaluation over folds (mean ± std)",
             "Few-shot evaluation (Point-MAE's ModelNet40 protocol): per fold, `way` classes, `shot` support samples "
             "from the train split and `query` from the test split. protocol=svm: frozen features + linear SVM; "
             "protocol=finetune: end-to-end fine-tuning per fold (final-epoch accuracy).\n\n"
             "Example: anymae fewshot --checkpoint runs/x/last.pt data.source=modelnet40_resampled data.root=mn40/ \\\n"
             "           fewshot.way=5 fewshot.shot=10\n\n" + EPILOG_OVERRIDES)
    p.add_argument("--config", help="YAML few-shot config")
    p.add_argument("--checkpoint", help="pretraining checkpoint (sets checkpoint=...)")
    p.add_argument("overrides", nargs="*", metavar="key=value")

    p = _add(sub, "probe-nodes", _cmd_probe_nodes, "node classification probe of a graph encoder (GraphMAE)",
             "Logistic regression on frozen full-graph node embeddings (Adam lr 0.01, wd 1e-4, 300 epochs), "
             "mean ± std over seeds of the final-epoch test accuracy and of the test accuracy at the best "
             "validation epoch.\n\nExample: anymae probe-nodes --checkpoint runs/cora/last.pt "
             "data.source=graph_folder data.root=data/cora\n\n" + EPILOG_OVERRIDES)
    p.add_argument("--config", help="YAML node-probe config")
    p.add_argument("--checkpoint", help="pretraining checkpoint (sets checkpoint=...)")
    p.add_argument("overrides", nargs="*", metavar="key=value")

    p = _add(sub, "reconstruct", _cmd_reconstruct, "PNG of input | masked | reconstruction",
             "Write a reconstruction picture. For norm_pix models the hidden patches are mapped back with "
             "the input patch's own mean/variance (said in the picture), and the normalized prediction "
             "is shown too.\n\nExample: anymae reconstruct --checkpoint runs/x/last.pt --input photos/ --out recon.png")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", help="an image file or a folder; default: the run's own data (evaluation split)")
    p.add_argument("--out", default="reconstruction.png")
    p.add_argument("--num", type=int, default=8, help="samples (rows)")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks")
    p.add_argument("--gif", help="also write an animated GIF of the panels (video clips), e.g. recon.gif")
    p.add_argument("overrides", nargs="*", metavar="data.key=value", help="change the data section")

    p = _add(sub, "export", _cmd_export, "export weights (timm, safetensors, official MAE)",
             "Export: 'timm' = encoder state dict for timm's VisionTransformer (strict load), 'safetensors' = "
             "the same as safetensors with the config in its metadata, 'official' = the full MAE in the "
             "facebookresearch/mae release format.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=["timm", "safetensors", "official"], default="timm")
    p.add_argument("--out", required=True)

    p = _add(sub, "info", _cmd_info, "list modalities, presets, parameter counts, data sources",
             "List registered models (with trainable parameter counts) and data sources.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'mae_vit_*'")

    p = _add(sub, "stats", _cmd_stats, "per-channel mean/std of a dataset's raw inputs (for normalization)",
             "Measure the raw inputs of a data section (built with normalize: false; channel = axis 0 of a "
             "sample) and print the mean/std snippet for the data section.\n\n"
             "Example: anymae stats data.source=audio_folder data.root=./clips model.num_mel_bins=128\n\n"
             + EPILOG_OVERRIDES)
    p.add_argument("--config", help="YAML with a data section (and optionally split, max_samples, model)")
    p.add_argument("overrides", nargs="*", metavar="key=value")

    p = _add(sub, "channel-subsets", _cmd_channel_subsets, "score a fine-tuned multi-channel model on channel subsets",
             "Robustness to missing channels: the same fine-tuned classifier on the same test data, fed only the "
             "listed channels (one --subset per subset, names comma-separated).\n\n"
             "Example: anymae channel-subsets --checkpoint runs/ft/last.pt --subset dna,er,rna --subset dna,rna \\\n"
             "           data.source=multichannel_files data.root=test/\n\n" + EPILOG_OVERRIDES)
    p.add_argument("--config", help="YAML with checkpoint, data, subsets")
    p.add_argument("--checkpoint", help="fine-tuning checkpoint (sets checkpoint=...)")
    p.add_argument("--subset", dest="subsets", action="append", metavar="A,B,...",
                   help="a channel subset, names comma-separated; repeat for several (default: the data's channels)")
    p.add_argument("overrides", nargs="*", metavar="key=value")

    p = _add(sub, "demo", _cmd_demo, "pretrain a tiny MAE on real photos, evaluate, draw",
             "Pretrain a tiny image MAE on crops of real photographs for a few minutes on the CPU, then "
             "compare it with the same encoder at random init (held-out reconstruction, k-NN, linear "
             "probe) and write reconstruction and embedding pictures.")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--minutes", type=float, default=5.0, help="pretraining time budget")
    p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from anymae.core.config import ConfigError

    try:
        return args.fn(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"anymae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
