"""``python -m irsam2`` (and ``torchrun -m irsam2 train ...``)."""

import sys

from irsam2.cli import main

sys.exit(main())
