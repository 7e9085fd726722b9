"""Export a run to TFLite and ONNX, verify and report: `python -m deploy.export --run-dir DIR`."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--export-dir", help="defaults to RUN_DIR/export")
    parser.add_argument("--calibration-sentences", type=int, default=2000)
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--prune", type=float, metavar="SPARSITY",
                        help="also fine-tune a magnitude-pruned copy at this sparsity (e.g. 0.5) and report it")
    parser.add_argument("--prune-steps", type=int, default=200)
    args = parser.parse_args(argv)

    from kerasrnn.export.exporter import ExportSettings, export_run

    settings = ExportSettings(calibration_sentences=args.calibration_sentences, latency_runs=args.latency_runs,
                              prune_sparsity=args.prune, prune_steps=args.prune_steps)
    try:
        export_run(args.run_dir, args.export_dir, settings)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    export_dir = args.export_dir or os.path.join(args.run_dir, "export")
    with open(os.path.join(export_dir, "report.md"), encoding="utf-8") as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
