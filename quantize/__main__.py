"""``python -m edgedepth_quantize`` (the ``edgedepth-quantize`` command); see ``cli.py``."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
