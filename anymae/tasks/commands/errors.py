"""How a command's failure reaches the user: the errors answered with one line, and that line."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors a command answers with one line: what the user can fix (input, config, files,
    a diverged run, a missing extra); anything else is a bug and keeps its traceback."""
    from anymae.core.config import ConfigError
    from anymae.datasets.skips import DataError
    from anymae.extras import MissingExtraError
    from anymae.tasks.train.checkpoint import CheckpointError

    # ValueError: every "bad value" check of the package (DataError and ConfigError are ones);
    # FloatingPointError: NonFiniteLossError (a diverged run)
    return (ConfigError, DataError, CheckpointError, OSError, MissingExtraError, FloatingPointError, ValueError)


def one_line(err: BaseException) -> str:
    """``err``'s message on one line (a message listing keys line by line is joined with "; ")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = ""
    for line in lines:
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text or type(err).__name__
