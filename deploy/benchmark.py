"""Time every exported artifact and the Keras model side by side:
`python -m deploy.benchmark --run-dir DIR [--seq-lens 16,32,128] [--threads 1,2]`."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--seq-lens", default="16,32,128")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=100, help="timed calls per artifact and length")
    args = parser.parse_args(argv)

    from kerasrnn.runtime.benchmark import benchmark

    try:
        seq_lens = [int(x) for x in args.seq_lens.split(",")]
        threads = [int(x) for x in args.threads.split(",")]
        bench = benchmark(args.run_dir, seq_lens, threads, args.runs)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for t, results in bench["results"].items():
        print(f"\nbatch 1, {t} thread(s), median ms")
        print("artifact".ljust(22) + "".join(f"{n:>10}" for n in seq_lens))
        for name, by_len in results.items():
            print(name.ljust(24) + "".join(f"{by_len[str(n)]['p50']:>10.3f}" if str(n) in by_len else f"{'-':>10}"
                                           for n in seq_lens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
