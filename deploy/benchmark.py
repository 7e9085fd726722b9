"""Time every exported artifact and the Keras model side by side:
`python -m deploy.benchmark --run-dir DIR [--seq-lens 16,32,128] [--threads 1,2]`.

A thin wrapper of `kerasrnn benchmark` (kerasrnn.cli).
"""

import sys

from kerasrnn.cli import module_main

main = module_main("benchmark")

if __name__ == "__main__":
    sys.exit(main())
