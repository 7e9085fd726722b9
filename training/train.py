"""Train a task model or pre-train a BiLM: `python -m training.train --config CONFIG.toml --output-dir DIR`."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="TOML config (training/configs/*.toml)")
    parser.add_argument("--output-dir", required=True, help="run directory to write")
    parser.add_argument("--train-file", help="override data.train_file (same data format)")
    parser.add_argument("--dev-file", help="override data.dev_file (same data format)")
    parser.add_argument("--test-file", help="override data.test_file (same data format)")
    parser.add_argument("--seed", type=int, help="override training.seed")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--init-from", help="override model.init_from (a pre-trained run directory; '' trains from scratch)")
    args = parser.parse_args(argv)

    from kerasrnn.config import Config
    from kerasrnn.trainer import train

    try:
        config = Config.load(args.config)
        files = {f"{k}_file": getattr(args, f"{k}_file") for k in ("train", "dev", "test")}
        files = {k: os.path.abspath(v) for k, v in files.items() if v}
        if files:
            config = config.replace("data", **files)
        if args.seed is not None:
            config = config.replace("training", seed=args.seed)
        if args.init_from is not None:
            config = config.replace("model", init_from=args.init_from)
        if args.epochs is not None:
            config = config.replace("training", epochs=args.epochs)
        train(config, args.output_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
