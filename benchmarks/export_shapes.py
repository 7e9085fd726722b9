"""Parity, padding and latency of every artifact for the hand-written Keras models of the notebook-export tests.

`.venv/bin/python -m benchmarks.export_shapes [--output runs/export_shapes.json]` (from the repository root)
builds and briefly fits each model of `tests/export/test_keras_models.py`, exports it with `export_model` and
prints one table row per artifact.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/export_shapes.json")
    parser.add_argument("--latency-runs", type=int, default=50)
    args = parser.parse_args(argv)

    import dataclasses

    import keras

    from kerasrnn.export.exporter import export_model
    from tests.export.test_keras_models import MODELS, SETTINGS, fit_briefly, inputs_for

    settings = dataclasses.replace(SETTINGS, latency_runs=args.latency_runs)
    results = {}
    for name, (build, _) in MODELS.items():
        keras.utils.set_random_seed(1)
        model = build()
        data = inputs_for(model)
        fit_briefly(model, data)
        with tempfile.TemporaryDirectory() as tmp:
            report = export_model(model, Path(tmp), data if len(data) > 1 else next(iter(data.values())),
                                  settings=settings)
        results[name] = report
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print("| model | artifact | parity max_abs | mean cos | argmax agreement | padding max diff | p50 ms (32 pos.) |")
    print("|---|---|---|---|---|---|---|")
    for name, report in results.items():
        print(f"| {name} | Keras | - | - | - | - | {report['keras']['latency_ms']['p50']:.3f} |")
        for artifact, r in report["artifacts"].items():
            if "error" in r:
                print(f"| {name} | {artifact} | not produced (calibrator crash on the GRU WHILE loop) | | | | |")
                continue
            p = r["parity"]
            print(f"| {name} | {artifact} | {p['max_abs']:.2e} | {p['mean_cos']:.4f} | "
                  f"{p.get('argmax_agreement', float('nan')):.4f} | {r['padding_max_diff']:.2e} | "
                  f"{r['latency_ms']['p50']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
