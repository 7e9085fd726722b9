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
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last epoch checkpoint")
    parser.add_argument("--workers", help="multi-worker training: comma-separated host:port of every worker "
                        "(the same list on each; sets TF_CONFIG)")
    parser.add_argument("--worker-index", type=int, default=0, help="this process's position in --workers")
    args = parser.parse_args(argv)

    from kerasrnn.checkpointing import TrainingDiverged
    from kerasrnn.config import Config
    from kerasrnn.trainer import train

    try:
        if args.workers:
            import json

            from kerasrnn.distribute import cluster_config

            os.environ["TF_CONFIG"] = json.dumps(cluster_config(args.workers.split(","), args.worker_index))
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
        train(config, args.output_dir, resume=args.resume)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:  # the message names the last good checkpoint
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
