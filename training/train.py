"""Train a task model or pre-train a BiLM: `python -m training.train --config CONFIG.toml --output-dir DIR`.

A thin wrapper of `kerasrnn train` (kerasrnn.cli).
"""

import sys

from kerasrnn.cli import module_main

main = module_main("train")

if __name__ == "__main__":
    sys.exit(main())
