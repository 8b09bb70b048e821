"""Every `anymae ...` command line in README.md's shell blocks runs as written, on tiny data.

README.md is parsed here, at test time, so a command added to it is covered without touching this
file. A command line starts with `anymae` or `.venv/bin/anymae` (continued over trailing `\\`); each
README section (heading) runs its commands in order in its own working directory, where the paths the
README names exist as tiny generated data (`_write_data`) and `configs/` is the repository's. What the
test changes, and why:

- `anymae` is the in-process entry point (`anymae.cli.main`), not a new interpreter per command.
- Commands that train get tiny-run overrides appended (`RUN_TINY`: two optimizer steps, batches of 2,
  no loader processes, no TensorBoard); a paper-size config (`--config` of a preset that is not a
  `*tiny*` one) only has to resolve: it runs with `--print-config` (these commands are marked
  `[print-config]` in the test ids), except those in `SMALL_ENOUGH`, which run as the tiny ones do.
- Placeholders: a `--checkpoint` path that no earlier command of the section wrote (`.../last.pt`,
  `runs/x/last.pt`, `...`) is the newest checkpoint the section wrote; a bare `...` argument ("more
  options") is dropped; absolute example paths are mapped in `ABSOLUTE`.
- A command whose modality's extra is not installed is skipped (the error names the extra).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PROGRAM = re.compile(r"^(?:\.venv/bin/)?anymae(?:\s|$)")
ABSOLUTE = {"/path/to/images": "photos", "/data/ShapeNet55-34/ShapeNet-55": "shapenet55"}
# paper-size configs cheap enough to run on the tiny data (with these overrides for its size)
SMALL_ENOUGH = {"configs/graphmae_gat_cora.yaml": ["model.in_dim=5"]}  # 2.0M parameters; tiny Cora has 5 features
# README lines that cannot run as written, with what is wrong (a corrected README line is a new text
# and runs normally; these are reported to whoever edits the README)
BATCH = 2  # the batch size of tiny runs (a config's smaller one is kept: one graph per step)
RUN_TINY = {
    "pretrain": ["run.max_steps=2", "run.num_workers=0", "run.tensorboard=false", f"optim.batch_size={BATCH}"],
    "finetune": ["run.max_steps=2", "run.num_workers=0", "run.tensorboard=false", f"finetune.optim.batch_size={BATCH}"],
    "probe": ["run.num_workers=0"],
    "probe-nodes": ["run.num_workers=0"],
    "fewshot": ["run.num_workers=0"],
    "stats": ["run.num_workers=0"],
    "channel-subsets": ["run.num_workers=0"],
}


@dataclass
class ReadmeCommand:
    """One command line of the README: its section, text, and arguments after the program name."""

    section: str
    text: str
    words: list[str]
    paper_size: bool = field(init=False)

    def __post_init__(self) -> None:
        config = self.option("--config")
        self.paper_size = config is not None and "tiny" not in Path(config).stem and config not in SMALL_ENOUGH

    def option(self, name: str) -> str | None:
        return next((b for a, b in zip(self.words, self.words[1:]) if a == name), None)

    @property
    def id(self) -> str:
        return f"anymae {shlex.join(self.words)}"[:110] + (" [print-config]" if self.paper_size else "")


def readme_commands(text: str) -> list[ReadmeCommand]:
    """The `anymae` command lines of the shell blocks (untagged, bash, sh, shell) of a README text."""
    commands, section = [], ""
    for block in re.finditer(r"^#+ ([^\n]*)$|^```(\w*)\n(.*?)^```", text, flags=re.M | re.S):
        if block.group(1) is not None:
            section = block.group(1).strip()
            continue
        if block.group(2) not in ("", "bash", "sh", "shell"):
            continue
        for line in re.sub(r"\\\n\s*", " ", block.group(3)).splitlines():
            if PROGRAM.match(line.strip()):
                words = shlex.split(line, comments=True)
                commands.append(ReadmeCommand(section, line.strip(), words[1:]))
    return commands


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_parser_finds_every_command() -> None:
    text = ("# A\n```bash\nmake demo\n.venv/bin/anymae info   # lists\n```\n## B\n```yaml\nanymae x\n```\n"
            "```\nanymae probe --checkpoint c.pt \\\n    'probe.protocols=[knn, linear]' \\\n  out=r.json\n```\n")
    found = readme_commands(text)
    assert [(c.section, c.words) for c in found] == [
        ("A", ["info"]), ("B", ["probe", "--checkpoint", "c.pt", "probe.protocols=[knn, linear]", "out=r.json"])]
    assert len(COMMANDS) >= 20 and {c.words[0] for c in COMMANDS} >= {"pretrain", "probe", "finetune", "export"}


# ---------------------------------------------------------------- tiny data at the README's paths


def _write_data(root: Path) -> None:
    """Every file and folder the README's commands name, tiny (a few files each)."""
    from anymae.datasets.audio.synthetic import write_audio_folder
    from anymae.datasets.image.synthetic import write_image_folder
    from anymae.datasets.multichannel.files import synthetic_stacks
    from anymae.datasets.multichannel.io import write_stack
    from anymae.datasets.points.synthetic import synthetic_shape, write_cloud
    from tests.datasets.graph.test_files import write_planetoid

    for name, n in (("photos", 2), ("some_photos", 1), ("train", 3), ("val", 2)):
        write_image_folder(root / name, n, 2, size=40, fmt="png", seed=len(name))
    write_audio_folder(root / "clips", 2, ("tone", "noise"), fmt="flac", sr=16000, seconds=1.3)
    (root / "clip.flac").symlink_to(root / "clips" / "tone" / "tone_0.flac")
    esc = write_audio_folder(root / "ESC-50" / "audio", 2, ("tone", "noise"), sr=16000, seconds=1.3)
    rows = [f"{kind}/{kind}_{i}.wav,{i + 1},{k},{kind}" for k, kind in enumerate(("tone", "noise")) for i in range(2)]
    (esc.parent / "meta").mkdir()
    (esc.parent / "meta" / "esc50.csv").write_text("filename,fold,target,category\n" + "\n".join(rows) + "\n")
    rng = np.random.default_rng(0)
    shapes = ("cube", "sphere", "torus", "cylinder", "cone")
    for i, shape in enumerate(shapes[:2] * 2):
        write_cloud(root / "clouds" / shape / f"{shape}_{i}.ply", synthetic_shape(shape, 300, rng))
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)  # 8×3
    sides = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    write_cloud(root / "chair.off", corners, faces=np.array([t for a, b, c, d in sides for t in ((a, b, c), (a, c, d))]))
    (root / "mn40").mkdir()
    names = {"train": [], "test": []}
    for shape in shapes:  # 5 classes of 11 train and 20 test clouds: a 5-way 10-shot fold with 20 queries
        for i in range(31):
            rows = np.concatenate([synthetic_shape(shape, 256, rng), rng.normal(size=(256, 3))], axis=1)
            write_cloud(root / "mn40" / shape / f"{shape}_{i:04d}.txt", rows)
            names["train" if i < 11 else "test"].append(f"{shape}_{i:04d}")
    for split, listed in (("shape_names", shapes), *names.items()):
        (root / "mn40" / f"modelnet40_{split}.txt").write_text("\n".join(listed) + "\n")
    write_planetoid(root / "data" / "Cora" / "raw", "cora")
    for folder, n in (("stacks", 4), ("test", 4)):
        for i, (stack, label) in enumerate(synthetic_stacks(n, 5, 32, seed=n)):
            write_stack(root / folder / f"class{label}" / f"s{i}.tif", stack)
    (root / "one_stack.tif").symlink_to(next((root / "stacks").rglob("*.tif")))
    from anymae.datasets.features.synthetic import write_feature_folder
    from anymae.datasets.volume.synthetic import write_volume_folder

    write_volume_folder(root / "volumes", 2, 2, size=20)
    write_feature_folder(root / "features", 4, dim=64, min_len=3, max_len=40, seed=0)
    with contextlib.suppress(ImportError):
        import av  # noqa: F401  (before decord, see write_video)

        from anymae.datasets.audiovisual.synthetic import write_av_folder
        from anymae.datasets.video.synthetic import moving_square, write_video

        write_av_folder(root / "av_clips", 2, 2, size=32, seconds=1.5, seed=0)
        write_av_folder(root / "av_heldout", 2, 2, size=32, seconds=1.5, seed=1)

        for direction, cls in enumerate(("right", "left")):
            (root / "videos" / cls).mkdir(parents=True)
            write_video(root / "videos" / cls / "0.mp4", moving_square(20, 40, direction, rng))
        (root / "clip.mp4").symlink_to(root / "videos" / "right" / "0.mp4")


def _newest_checkpoint(workdir: Path) -> str | None:
    written = sorted((workdir / "runs").rglob("last.pt"), key=lambda p: p.stat().st_mtime)
    return str(written[-1]) if written else None


def _arguments(command: ReadmeCommand, workdir: Path) -> list[str]:
    """The command's arguments with the placeholders resolved and the tiny-run overrides appended."""
    out = []
    for i, word in enumerate(command.words):
        key, eq, value = word.partition("=")
        if i and command.words[i - 1] == "--checkpoint" and not (workdir / word).is_file():
            out.append(_newest_checkpoint(workdir) or word)
        elif eq and key == "checkpoint" and not (workdir / value).is_file():
            out.append(f"checkpoint={_newest_checkpoint(workdir) or value}")
        elif word != "...":
            out.append(f"{key}={ABSOLUTE[value]}" if eq and value in ABSOLUTE else ABSOLUTE.get(word, word))
    if command.paper_size:
        return [*out, "--print-config"]
    config = command.option("--config")
    batch = (yaml.safe_load((ROOT / config).read_text()) or {}).get("optim", {}).get("batch_size") if config else None
    tiny = [w for w in RUN_TINY.get(command.words[0], []) if batch is None or batch > BATCH or "batch_size" not in w]
    return [*out, *SMALL_ENOUGH.get(config or "", []), *tiny]


@dataclass
class Outcome:
    status: int | str
    output: str


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every README command, section by section, each section in its own working directory."""
    from anymae.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("readme")
    data = base / "data"
    data.mkdir()
    _write_data(data)
    results: dict[str, Outcome] = {}
    cwd = Path.cwd()
    try:
        for number, command in enumerate(COMMANDS):
            workdir = base / f"section_{[c.section for c in COMMANDS].index(command.section):02d}"
            if not workdir.exists():
                workdir.mkdir()
                (workdir / "configs").symlink_to(ROOT / "configs")
                for entry in data.iterdir():
                    (workdir / entry.name).symlink_to(entry)
            os.chdir(workdir)
            args = _arguments(command, workdir)
            text = io.StringIO()
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                try:
                    status: int | str = main(args)
                except SystemExit as exit_:  # argparse refusing the line
                    status = f"SystemExit({exit_.code})"
                except Exception as err:  # noqa: BLE001  (reported by the test of this command)
                    status = f"{type(err).__name__}: {err}"
            results[f"{number}:{command.id}"] = Outcome(status, f"anymae {shlex.join(args)}\n{text.getvalue()}")
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return results


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[c.id for c in COMMANDS])
def test_readme_command_runs_as_written(outcomes: dict[str, Outcome], index: int) -> None:
    outcome = outcomes[f"{index}:{COMMANDS[index].id}"]
    if outcome.status != 0 and "pip install 'anymae[" in outcome.output:
        pytest.skip(f"an optional extra is missing: {outcome.output.splitlines()[-1]}")
    assert outcome.status == 0, f"exit {outcome.status}:\n{outcome.output[-3000:]}"
