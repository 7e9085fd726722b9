"""The `kerasrnn` command: `kerasrnn train | evaluate | export | benchmark | predict | embed`.

Each subcommand takes the flags of its `python -m training.* / deploy.*` module (those modules call this one) and
calls the library; errors in the inputs print `error: ...` and exit with 2, a diverged training exits with 3, a
multi-worker training whose peer stopped answering with 4, a training stopped by SIGTERM / Ctrl-C (after writing a
resumable checkpoint) with 143 / 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kerasrnn.files import WriteError

USAGE_ERRORS = (ValueError, FileNotFoundError, WriteError)


def _train_arguments(p):
    p.add_argument("--config", required=True, help="TOML config (training/configs/*.toml)")
    p.add_argument("--output-dir", required=True, help="run directory to write")
    p.add_argument("--train-file", help="override data.train_file (same data format)")
    p.add_argument("--dev-file", help="override data.dev_file (same data format)")
    p.add_argument("--test-file", help="override data.test_file (same data format)")
    p.add_argument("--seed", type=int, help="override training.seed")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument("--init-from", help="override model.init_from (a pre-trained run directory; '' trains from scratch)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --output-dir from its last epoch checkpoint")
    p.add_argument("--workers", help="multi-worker training: comma-separated host:port of every worker "
                   "(the same list on each; sets TF_CONFIG)")
    p.add_argument("--worker-index", type=int, default=0, help="this process's position in --workers")
    p.add_argument("--worker-timeout", type=float, default=60.0,
                   help="multi-worker training: seconds without a heartbeat after which a worker counts as dead and "
                   "the others stop (exit 4); default 60")


def _train(args) -> int:
    from kerasrnn.config import Config
    from kerasrnn.trainers import TrainingDiverged, train
    from kerasrnn.trainers.distribute import WorkerLost, cluster_config
    from kerasrnn.trainers.interrupt import TrainingInterrupted

    try:
        if args.workers:
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
        train(config, args.output_dir, resume=args.resume, worker_timeout=args.worker_timeout)
    except USAGE_ERRORS as e:
        return _error(e)
    except TrainingDiverged as e:  # the message names the last good checkpoint
        return _error(e, 3)
    except WorkerLost as e:
        return _error(e, 4)
    except TrainingInterrupted as e:  # the message is the command that continues the run
        print(f"stopped: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        return _error("interrupted at once (second Ctrl-C or outside an epoch); the last epoch checkpoint in "
                      f"{args.output_dir}/checkpoints is intact: add --resume to continue from it", 130)
    return 0


def _evaluate_arguments(p):
    p.add_argument("--run-dir", required=True)
    p.add_argument("--file", required=True, help="a file in the run's data format")
    p.add_argument("--artifact", help="a .tflite or .onnx export of the run's model")


def _evaluate(args) -> int:
    from kerasrnn.trainers import evaluate

    try:
        result = evaluate(args.run_dir, args.file, artifact=args.artifact)
    except (*USAGE_ERRORS, NotImplementedError) as e:
        return _error(e)
    print(json.dumps(result, indent=2))
    return 0


def _export_arguments(p):
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a training run directory (written by training.train)")
    source.add_argument("--model", help="a .keras file of any supported Keras model (a notebook model)")
    p.add_argument("--calibration", help="with --model: int ids [rows, time] right-padded with 0 (.npy), or one "
                   "array per input name (.npz); int8 calibration and, without --check, the check rows")
    p.add_argument("--check", help="with --model: ids (.npy / .npz) for the parity and padding checks")
    p.add_argument("--labels", help="with --model: gold label ids of the check rows (.npy): accuracy per artifact")
    p.add_argument("--export-dir", help="defaults to RUN_DIR/export; required with --model")
    p.add_argument("--calibration-sentences", type=int, default=2000)
    p.add_argument("--latency-runs", type=int, default=100)
    p.add_argument("--int8-fixed-length", type=int, default=32, metavar="N",
                   help="also write model_int8_lenN.tflite (full int8 unrolled over N positions); 0: not written")
    p.add_argument("--int8-chunk", type=int, default=8, metavar="K",
                   help="chunk of model_int8_staged.tflite (full int8 at any length); 0: not written")
    p.add_argument("--stream-chunk", type=int, default=8, metavar="K",
                   help="tokens of the streaming files' chunk signature (forward-only models); 0: not written")
    p.add_argument("--prune", type=float, metavar="SPARSITY",
                   help="also fine-tune a magnitude-pruned copy at this sparsity (e.g. 0.5) and report it")
    p.add_argument("--prune-steps", type=int, default=200)


def _export(args) -> int:
    from kerasrnn.export.exporter import ExportSettings, export_model, export_run

    try:
        for flag in ("int8_fixed_length", "int8_chunk", "stream_chunk"):
            if getattr(args, flag) < 0:
                raise ValueError(f"--{flag.replace('_', '-')} must be >= 0 (0: not written), got {getattr(args, flag)}")
        settings = ExportSettings(calibration_sentences=args.calibration_sentences, latency_runs=args.latency_runs,
                                  prune_sparsity=args.prune, prune_steps=args.prune_steps,
                                  int8_fixed_length=args.int8_fixed_length or None,
                                  int8_chunk=args.int8_chunk or None, stream_chunk=args.stream_chunk or None)
        if args.model:
            if not args.calibration or not args.export_dir:
                raise ValueError("--model needs --calibration IDS.npy and --export-dir DIR")
            if args.prune is not None:
                raise ValueError("--prune applies to --run-dir exports of task runs")
            export_model(args.model, args.export_dir, args.calibration, args.check, settings, labels=args.labels)
        else:
            if args.calibration or args.check or args.labels:
                raise ValueError("--calibration, --check and --labels go with --model; a run calibrates on its "
                                 "training data and scores its test split")
            export_run(args.run_dir, args.export_dir, settings)
    except USAGE_ERRORS as e:
        return _error(e)
    export_dir = args.export_dir or os.path.join(args.run_dir, "export")
    with open(os.path.join(export_dir, "report.md"), encoding="utf-8") as f:
        print(f.read())
    return 0


def _benchmark_arguments(p):
    p.add_argument("--run-dir", required=True)
    p.add_argument("--seq-lens", default="16,32,128")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=100, help="timed calls per artifact and length")
    p.add_argument("--compare", action="append", default=[], metavar="RUN_DIR",
                   help="another exported run whose artifacts are timed in the same rounds (as RUN_NAME/FILE); "
                   "repeat for several")


def _benchmark(args) -> int:
    from kerasrnn.runtime.latency import benchmark

    try:
        seq_lens = [int(x) for x in args.seq_lens.split(",")]
        threads = [int(x) for x in args.threads.split(",")]
        bench = benchmark(args.run_dir, seq_lens, threads, args.runs, args.compare)
    except (*USAGE_ERRORS, RuntimeError) as e:
        return _error(e)
    for t, results in bench["results"].items():
        print(f"\nbatch 1, {t} thread(s), median ms")
        width = max(24, *(len(name) + 2 for name in results))
        print("artifact".ljust(width - 2) + "".join(f"{n:>10}" for n in seq_lens))
        for name, by_len in results.items():
            print(name.ljust(width) + "".join(f"{by_len[str(n)]['p50']:>10.3f}" if str(n) in by_len else f"{'-':>10}"
                                           for n in seq_lens))
    return 0


def _predict_arguments(p):
    p.add_argument("--model", required=True, help="a .tflite, .onnx or .keras file in an export or run folder")
    p.add_argument("--text", action="append", help="text to run; repeat for several")
    p.add_argument("--file", help="a UTF-8 file with one text per line ('-': standard input); writes JSON lines. "
                   "Without --text and --file, standard input is read")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (with --text)")


def _predict_stream(args) -> int:
    from kerasrnn.runtime.streaming import stream_text

    try:
        results = [stream_text(args.model, text) for text in args.text]
    except USAGE_ERRORS as e:
        return _error(e)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return 0
    for steps in results:  # one line per token, as it is fed
        for step in steps:
            if "tag" in step:
                print(f"{step['token']}\t{step['tag']}\t{step['probability']:.3f}")
            else:
                print(f"{step['token']}\t-> " + "  ".join(f"{w} {p:.3f}" for w, p in step["next"]))
        print()
    return 0


def _predict(args) -> int:
    from kerasrnn.runtime.predictor import Predictor

    if "stream" in Path(args.model).name and args.text:
        return _predict_stream(args)
    try:
        predictor = Predictor(args.model)
        if args.text:
            results = predictor.predict(args.text)
        else:
            lines = _read_lines(args.file or "-")
            for start in range(0, len(lines), 64):
                for result in predictor.predict(lines[start : start + 64]):
                    print(json.dumps(result, ensure_ascii=False))
            return 0
    except USAGE_ERRORS as e:
        return _error(e)
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


def _read_lines(path: str) -> list[str]:
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return [line for line in text.splitlines() if line.strip()]


def _embed_arguments(p):
    p.add_argument("--run-dir", required=True, help="a BiLM run (or a task run) directory")
    p.add_argument("--words", default="bank,play,light,spring", help="comma-separated words")
    p.add_argument("--per-word", type=int, default=60, help="sentences per word")
    p.add_argument("--layer", type=int, default=None, help="contextual layer (default: the top one)")
    p.add_argument("--neighbours", type=int, default=3, help="occurrences per word whose neighbours are printed")
    p.add_argument("--output-dir", help="default RUN_DIR/embed")
    p.add_argument("--seed", type=int, default=0)


def _embed(args) -> int:
    from kerasrnn.contexts import picture

    try:
        picture(args.run_dir, args.words.split(","), args.per_word, args.layer, args.neighbours, args.output_dir,
                args.seed)
    except USAGE_ERRORS as e:
        return _error(e)
    return 0


COMMANDS = {
    "train": (_train_arguments, _train, "train a task model or pre-train a BiLM from a TOML config", "2"),
    "evaluate": (_evaluate_arguments, _evaluate, "score a run's model or one of its artifacts on a file", "2"),
    "export": (_export_arguments, _export, "export a run to TFLite and ONNX, verify and report", "2"),
    "benchmark": (_benchmark_arguments, _benchmark, "time every exported artifact and the Keras model", "3"),
    "predict": (_predict_arguments, _predict, "tag or classify raw text with a .tflite, .onnx or .keras model", "3"),
    "embed": (_embed_arguments, _embed, "picture contextual vs static vectors of ambiguous words", "2"),
}


def _error(e, code: int = 2) -> int:
    print(f"error: {e}", file=sys.stderr)
    return code


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kerasrnn", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, _, help_text, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return top


def main(argv=None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    _, run, _, log_level = COMMANDS[args.command]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", log_level)
    return run(args)


def module_main(command: str):
    """The `main(argv=None)` of a `python -m training.* / deploy.*` module: this command's subcommand."""
    def main_(argv=None) -> int:
        return main([command, *(sys.argv[1:] if argv is None else argv)])

    return main_


if __name__ == "__main__":
    sys.exit(main())
