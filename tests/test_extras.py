from __future__ import annotations

import pytest

from anymae.extras import require


def test_require_returns_the_module() -> None:
    assert require("json", "none").dumps([1]) == "[1]"


def test_missing_module_names_the_extra_to_install() -> None:
    with pytest.raises(ImportError, match=r"for decoding video.*pip install 'anymae\[video\]'"):
        require("surely_not_a_module_xyz", "video", purpose="decoding video")
