"""Start-up stays light: `import anymae` and `anymae --help` import no model code (checked by the
modules a fresh interpreter holds, never by timing), and the registry still finds every preset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "torchvision", "torch_geometric", "transformers")


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter (at the repository root); it prints one JSON value."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED = f"sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))"


def test_import_anymae_imports_no_heavy_library():
    assert _fresh(f"import sys, json, anymae; print(json.dumps({LOADED}))") == []


def test_help_prints_without_importing_torch():
    code = ("import sys, json, io, contextlib\nfrom anymae.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n    try:\n        main(['--help'])\n    except SystemExit as e:\n"
            "        code = e.code\n"
            f"print(json.dumps({{'code': code, 'usage': out.getvalue().startswith('usage: anymae'), 'loaded': {LOADED}}}))")
    assert _fresh(code) == {"code": 0, "usage": True, "loaded": []}


def test_the_registry_still_lists_and_builds_every_modality():
    code = ("import sys, json, anymae\nfrom anymae.core.registry import MODELS\nnames = anymae.list_models()\n"
            "model = anymae.create_model('mae_vit_tiny_patch4')\n"
            "print(json.dumps({'modalities': sorted({MODELS.entry(n).modality for n in names}), "
            "'model': isinstance(model, anymae.MaskedAutoencoder), 'tiny': 'point_mae_tiny' in names}))")
    assert _fresh(code) == {"modalities": ["audio", "audio-visual", "features", "graph", "image", "image+video",
                                           "multi-image", "multichannel", "points", "video", "volume"],
                            "model": True, "tiny": True}
