"""Training throughput, ours vs the PyTorch reference of the seed's model, side by side on the same batches.

`python -m training.benchmark --config training/configs/pos_ewt.toml --output-dir DIR [--threads 2] [--steps 100]
[--repeats 3] [--cells sru]` writes DIR/train_bench.json and DIR/train_bench.png. Needs the `bench` extra:
`pip install -e ".[bench]"`.
"""

import argparse
import importlib.util
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a tagging config, e.g. training/configs/pos_ewt.toml")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--threads", type=int, default=2,
                        help="cores of each framework (default 2): PyTorch intra-op threads; ours the trainer's "
                        "split (kerasrnn.trainers.threads)")
    parser.add_argument("--steps", type=int, default=100, help="timed training steps on the real data (default 100)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per side and case, taking turns; figures are medians (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", default="real,synthetic_64x64,synthetic_long,real_long",
                        help="real (the config's training data), synthetic_long (16 x 256 random ids), "
                        "synthetic_64x64 (64 x 64 random ids), real_long (the training sentences joined 8 at a time: "
                        "long rows of real lengths, 16 per batch, bucketed)")
    parser.add_argument("--cells", default="",
                        help="other recurrent cells to time as extra sides of ours, every size kept, e.g. sru "
                        "(cell_ratio: their throughput over the config's cell's), and each cell's recurrent layer "
                        "alone (layer_ratio)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("torch") is None:
        print('error: PyTorch is not installed; the reference side needs it: .venv/bin/pip install -e ".[bench]" '
              "(torch==2.13.0, CPU build)", file=sys.stderr)
        return 3
    from benchmarks.train_throughput import benchmark

    try:
        result = benchmark(args.config, args.output_dir, threads=args.threads, steps=args.steps, seed=args.seed,
                           cases=tuple(c for c in args.cases.split(",") if c), repeats=args.repeats,
                           cells=tuple(c for c in args.cells.split(",") if c))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for case, row in result["cases"].items():
        o, p = row["ours"], row["pytorch"]
        print(f"{case}: ours {o['nonpad_tokens_per_second']:,.0f} tok/s ({o['ms_per_step']} ms/step, "
              f"{o['peak_rss_mb']:.0f} MB) | pytorch {p['nonpad_tokens_per_second']:,.0f} tok/s "
              f"({p['ms_per_step']} ms/step, {p['peak_rss_mb']:.0f} MB) | ratio {row['ratio']:.2f} "
              f"(runs: {', '.join(f'{x:.2f}' for x in row['ratio_per_run'])})")
        for cell, ratio in row["cell_ratio"].items():
            c = row[f"ours_{cell}"]
            print(f"{case}: ours with {cell} {c['nonpad_tokens_per_second']:,.0f} tok/s ({c['ms_per_step']} ms/step) | "
                  f"{cell} / {result['cell']} {ratio:.2f} (runs: "
                  f"{', '.join(f'{x:.2f}' for x in row['cell_ratio_per_run'][cell])})")
        for cell, ratio in row["layer_ratio"].items():
            c, o = row[f"layer_{cell}"], row[f"layer_{result['cell']}"]
            print(f"{case}: recurrent layer alone: {cell} {c['ms_per_step']} ms/step, {result['cell']} "
                  f"{o['ms_per_step']} ms/step | {cell} / {result['cell']} {ratio:.2f} (runs: "
                  f"{', '.join(f'{x:.2f}' for x in row['layer_ratio_per_run'][cell])})")
    print(f"padding fraction: {result['padding_fraction']:.4f} bucketed, "
          f"{result['padding_fraction_unbucketed']:.4f} unbucketed")
    print(f"wrote {os.path.join(args.output_dir, 'train_bench.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
