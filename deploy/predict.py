"""Tag or classify raw text with a model: `python -m deploy.predict --model PATH --text "..."`.

PATH is a `.tflite`, `.onnx` or `.keras` file inside an export folder (with metadata.json) or a run folder.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--text", action="append", required=True, help="text to run; repeat for several")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    from kerasrnn.runtime.predictor import Predictor

    try:
        results = Predictor(args.model).predict(args.text)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return 0
    for result in results:
        if "tags" in result:
            for token, tag, p in zip(result["tokens"], result["tags"], result["probabilities"], strict=True):
                print(f"{token}\t{tag}\t{p:.3f}")
            print()
        else:
            print(f"{result['label']}\t{result['probability']:.3f}\t{' '.join(result['tokens'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
