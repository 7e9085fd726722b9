"""Train every recipe and write the results table the README shows; with `--ablations`, the lever tables too.

    python -m training.recipes [--recipes pos_ewt,sentiment_sst2] [--runs-dir runs] [--ablations] [--force]

Each recipe `training/configs/NAME.toml` trains into `RUNS/NAME` (one `python -m training.train` process each, as a
user would run it); a run directory whose `config.toml` reads as the same config and that holds `metrics.json` is
reused, so the table can be rewritten without training again (`--force` retrains); a run directory of another config
is replaced. Writes `RUNS/results.md` and `RUNS/results.json`. `--ablations` also trains the variants of
`training/ablations.toml` (a recipe with one lever changed) into `RUNS/ablations/NAME/VARIANT` and writes
`RUNS/ablations.md`: lever -> metric per task.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from kerasrnn.config import Config
from kerasrnn.files import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / "configs"
ABLATIONS = ROOT / "ablations.toml"
# pos_ewt_distilled learns from runs/pos_ewt, the *_elmo recipes read runs/bilm_pretrain_glove: each comes after
# the run it needs
RECIPES = ("pos_ewt", "ner_wnut17", "intent_clinc150", "intent_banking77", "sentiment_sst2", "pos_ewt_sru",
           "pos_ewt_distilled", "bilm_pretrain_glove", "pos_ewt_elmo", "ner_wnut17_elmo", "sentiment_sst2_elmo",
           "intent_clinc150_elmo", "intent_banking77_elmo")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated (default: {','.join(RECIPES)})")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--ablations", action="store_true", help="also train the variants of training/ablations.toml")
    parser.add_argument("--force", action="store_true", help="retrain runs whose results exist")
    args = parser.parse_args(argv)
    runs = Path(args.runs_dir)
    names = [n for n in args.recipes.split(",") if n]
    for name in names:
        if not (CONFIGS / f"{name}.toml").is_file():
            print(f"error: no recipe {name!r} ({CONFIGS / (name + '.toml')} does not exist)", file=sys.stderr)
            return 2
    variants = read_ablations(ABLATIONS) if args.ablations else {}
    rows = []
    for name in names:
        config = Config.load(CONFIGS / f"{name}.toml")
        rows.append((name, config, train_once(config, runs / name, args.force)))
    write_results(rows, runs)
    if args.ablations:
        tables = {}
        for name, config, base in rows:
            tables[name] = []
            for variant in variants.get(name, []):
                out = runs / "ablations" / name / slug(variant["lever"])
                tables[name].append((variant["lever"], train_once(variant_config(config, variant), out, args.force)))
            tables[name].insert(0, ("this recipe (training/configs)", base))
        write_ablations(tables, runs)
    return 0


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-")


def read_ablations(path: Path) -> dict:
    """{recipe: [{"lever": str, "changes": {section: {key: value}}}]} from `training/ablations.toml`."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    out = {}
    for recipe, entries in raw.items():
        out[recipe] = []
        for i, entry in enumerate(entries):
            entry = dict(entry)
            lever = entry.pop("lever", None)
            if not lever or not all(isinstance(v, dict) for v in entry.values()):
                raise ValueError(f"{path}: [[{recipe}]] entry {i + 1} needs a lever and tables of changes")
            out[recipe].append({"lever": lever, "changes": entry})
    return out


def variant_config(config, variant: dict):
    """The recipe's `config` with one `read_ablations` variant's changes."""
    for section, values in variant["changes"].items():
        config = config.replace(section, **values)
    return config


def optimizer_of(run_dir: Path) -> str:
    """The class of the optimizer a run's model.keras was compiled with (its config.json), or "-" without one."""
    import zipfile

    try:
        with zipfile.ZipFile(run_dir / "model.keras") as archive:
            compiled = json.loads(archive.read("config.json")).get("compile_config") or {}
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return "-"
    name = (compiled.get("optimizer") or {}).get("class_name", "-")
    return "Adam (Keras)" if name == "Adam" else name


def train_once(config, out: Path, force: bool) -> dict:
    """The run's metrics.json (with the optimizer its model was compiled with), training it first unless `out`
    holds a finished run of this very config."""
    metrics = out / "metrics.json"
    same = (out / "config.toml").is_file() and Config.load(out / "config.toml") == config  # keys added since: defaults
    if metrics.is_file() and same and not force:
        print(f"{out}: reusing the finished run", flush=True)
        return {**json.loads(metrics.read_text(encoding="utf-8")), "optimizer": optimizer_of(out)}
    if out.exists():  # a run of another config (or --force): its checkpoints and export would not belong to the new one
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config_file = out.with_name(out.name + ".toml")
    config.save(config_file)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    command = [sys.executable, "-m", "training.train", "--config", str(config_file), "--output-dir", str(out)]
    print(" ".join(command), flush=True)
    with open(out.with_name(out.name + ".log"), "w", encoding="utf-8") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT.parent).returncode
    if status:
        raise SystemExit(f"error: training {out} failed (exit {status}); see {out.with_name(out.name + '.log')}")
    return {**json.loads(metrics.read_text(encoding="utf-8")), "optimizer": optimizer_of(out)}


def write_results(rows, runs: Path) -> None:
    table = ["| recipe | metric | dev | test | train minutes | epochs (best) | parameters | cell | static vectors | "
             "optimizer |", "|---|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for name, config, m in rows:
        metric = m["metric"]
        vectors = config.model.static_vectors or "-"
        if config.model.elmo:
            vectors += f"; ELMo from {config.model.init_from}"
        elif config.model.init_from:
            vectors = f"init_from {config.model.init_from}"
        if config.distill.teacher:
            vectors += f"; distilled from {config.distill.teacher}"
        table.append(f"| {name} | {metric} | {m['dev'][metric]:.4f} | {m['test'][metric]:.4f} | "
                     f"{m['train_seconds'] / 60:.1f} | {m['epochs']} ({m['best_epoch']}) | {m['parameters']:,} | "
                     f"{config.model.num_layers} x {config.model.cell} {config.model.units} | {vectors} | "
                     f"{m.get('optimizer', '-')} |")
        summary[name] = {"metric": metric, "dev": m["dev"][metric], "test": m["test"][metric],
                         "train_seconds": m["train_seconds"], "parameters": m["parameters"]}
    text = "\n".join(table) + "\n"
    atomic_write_text(text, runs / "results.md")
    atomic_write_json(summary, runs / "results.json")
    print(text, flush=True)


def write_ablations(tables: dict, runs: Path) -> None:
    lines = []
    for name, entries in tables.items():
        if len(entries) < 2:
            continue
        metric = entries[0][1]["metric"]
        base = entries[0][1]["test"][metric]
        lines += [f"#### {name} ({metric}, test split)", "", "| lever | dev | test | test vs recipe | train minutes |",
                  "|---|---|---|---|---|"]
        for lever, m in entries:
            lines.append(f"| {lever} | {m['dev'][metric]:.4f} | {m['test'][metric]:.4f} | "
                         f"{m['test'][metric] - base:+.4f} | {m['train_seconds'] / 60:.1f} |")
        lines.append("")
    text = "\n".join(lines)
    atomic_write_text(text, runs / "ablations.md")
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
