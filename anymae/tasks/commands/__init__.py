"""Implementations of the commands that are not a training or evaluation protocol: `demo`, `info`, `stats`."""
