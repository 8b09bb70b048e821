"""`python -m anymae` = the `anymae` command (also under torchrun: `torchrun -m anymae pretrain ...`)."""

from anymae.cli import entry

entry()
