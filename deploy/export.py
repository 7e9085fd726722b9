"""Export a run to TFLite and ONNX, verify and report: `python -m deploy.export --run-dir DIR`.

A thin wrapper of `kerasrnn export` (kerasrnn.cli).
"""

import sys

from kerasrnn.cli import module_main

main = module_main("export")

if __name__ == "__main__":
    sys.exit(main())
