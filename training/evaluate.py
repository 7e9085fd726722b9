"""Evaluate a run's model on a file: `python -m training.evaluate --run-dir DIR --file F [--artifact PATH]`."""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--file", required=True, help="a file in the run's data format")
    parser.add_argument("--artifact", help="a .tflite or .onnx export of the run's model")
    args = parser.parse_args(argv)

    from kerasrnn.trainer import evaluate

    try:
        result = evaluate(args.run_dir, args.file, artifact=args.artifact)
    except (ValueError, FileNotFoundError, NotImplementedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
