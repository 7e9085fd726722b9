"""Evaluate a run's model on a file: `python -m training.evaluate --run-dir DIR --file F [--artifact PATH]`.

A thin wrapper of `kerasrnn evaluate` (kerasrnn.cli).
"""

import sys

from kerasrnn.cli import module_main

main = module_main("evaluate")

if __name__ == "__main__":
    sys.exit(main())
