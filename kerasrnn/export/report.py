"""`report.md`: the export report as a table, one row per artifact, with the target's columns."""

from __future__ import annotations


def _artifact_label(name: str, r: dict) -> str:
    return f"{name} (rows of <= {r['fixed_length']} tokens: {r['rows_scored']})" if "fixed_length" in r else name


def _latency_cells(r: dict) -> list[str]:
    return [f"{r['latency_ms']['p50']:.3f}", f"{r['latency_ms']['p90']:.3f}"]


def report_markdown(report: dict, target) -> str:
    columns = target.columns() + ["latency p50 ms", "latency p90 ms"]
    lines = [target.title(), "", target.description(report), "",
             "| artifact | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|",
             "| Keras (tf.function) | " + " | ".join(target.keras_cells(report["keras"])
                                                     + _latency_cells(report["keras"])) + " |"]
    for name, r in report["artifacts"].items():
        if "error" in r:
            lines.append(f"| {name} | not produced: {r['error']} |" + " |" * (len(columns) - 1))
        else:
            lines.append(f"| {_artifact_label(name, r)} | " + " | ".join(target.cells(r) + _latency_cells(r)) + " |")
    lines += ["", "Ops per artifact:", ""] + [
        f"- `{name}`: {', '.join(r['ops'])}" for name, r in report["artifacts"].items() if "ops" in r]
    if report.get("streaming"):
        lines += ["", "Streaming files (outputs fed token by token and in chunks of 5 vs the full row in Keras):", "",
                  "| file | bytes | token by token max_abs | chunks of 5 max_abs | one step p50 ms |",
                  "|---|---|---|---|---|"]
        for name, r in report["streaming"].items():
            if "error" in r:
                lines.append(f"| {name} | not produced: {r['error']} | | | |")
            else:
                p = r["parity"]
                lines.append(f"| {name} | {r['bytes']:,} | {p['token_by_token_max_abs']:.2e} | "
                             f"{p['chunks_of_5_max_abs']:.2e} | {r['step_latency_ms']['p50']:.3f} |")
    if "pruned" in report:
        p, metric = report["pruned"], report["metric"]
        lines += ["", f"Pruned copy (`{p['file']}`, tfmot magnitude pruning, {p['sparsity']:.0%} target sparsity, "
                      f"{p['fine_tune_steps']} fine-tuning steps): test {metric} {p['test_metric']:.4f}, "
                      f"{p['bytes']:,} bytes, gzip {p['gzip_bytes']:,} bytes "
                      f"(unpruned fp32 gzip {p['unpruned_fp32_gzip_bytes']:,})."]
    if report.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"
