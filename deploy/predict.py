"""Tag or classify raw text with a model: `python -m deploy.predict --model PATH --text "..."`.

PATH is a `.tflite`, `.onnx` or `.keras` file inside an export folder (with metadata.json) or a run folder.

A thin wrapper of `kerasrnn predict` (kerasrnn.cli).
"""

import sys

from kerasrnn.cli import module_main

main = module_main("predict")

if __name__ == "__main__":
    sys.exit(main())
