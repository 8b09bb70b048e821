"""`python -m anymae` = the `anymae` command (also under torchrun: `torchrun -m anymae pretrain ...`)."""

import sys

from anymae.cli import main

sys.exit(main())
