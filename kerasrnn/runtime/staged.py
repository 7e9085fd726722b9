"""The calling protocol of a staged full-int8 file (`model_int8_staged.tflite`, made by
`kerasrnn.export.staged`): stages and explicit-state cells called in turn. `kerasrnn.runtime.runners.StagedRunner`
runs such a file in LiteRT."""

from __future__ import annotations

import numpy as np


def plan_from_shapes(shapes: dict[str, dict[str, tuple]]) -> list[dict]:
    """Per wave: {"chunk": K, "recurrences": {k: {state name: units}}}, from {signature: {input: shape}}."""
    plan = []
    while f"cell_{len(plan)}" in shapes:
        inputs = shapes[f"cell_{len(plan)}"]
        ks = sorted(int(name[2:]) for name in inputs if name.startswith("x_"))
        plan.append({"chunk": int(inputs[f"x_{ks[0]}"][1]),
                     "recurrences": {k: {n: int(inputs[f"{n}_{k}"][1]) for n in ("h", "c") if f"{n}_{k}" in inputs}
                                     for k in ks}})
    if not plan or f"stage_{len(plan)}" not in shapes:
        raise ValueError(f"a staged file needs stage_0..stage_W and cell_0..cell_(W-1); it has {sorted(shapes)}")
    return plan


def run_staged(call, plan: list[dict], inputs: dict[str, np.ndarray], output_name: str) -> np.ndarray:
    """The output of a staged file for one row (`inputs`: batch 1): `call(signature, inputs) -> outputs`, both
    dicts of NumPy arrays."""
    sequences = {}
    for s, wave in enumerate(plan):
        xs = call(f"stage_{s}", {**inputs, **sequences})
        size = wave["chunk"]
        time = np.asarray(xs[f"x_{next(iter(wave['recurrences']))}"]).shape[1]
        chunks = -(-time // size)
        padded, state, ys = {}, {}, {k: [] for k in wave["recurrences"]}
        for k, states in wave["recurrences"].items():
            x = np.asarray(xs[f"x_{k}"], np.float32)
            padded[k] = np.zeros((1, chunks * size, x.shape[2]), np.float32)
            padded[k][:, :time] = x
            state.update({f"{n}_{k}": np.zeros((1, units), np.float32) for n, units in states.items()})
        for i in range(chunks):
            feed = {f"x_{k}": x[:, i * size : (i + 1) * size] for k, x in padded.items()}
            out = call(f"cell_{s}", {**feed, **state})
            state = {name: np.asarray(out[name], np.float32) for name in state}
            for k in ys:
                ys[k].append(np.asarray(out[f"y_{k}"], np.float32))
        for k, parts in ys.items():
            sequences[f"rnn_{k}"] = np.concatenate(parts, axis=1)[:, :time]
    return np.asarray(call(f"stage_{len(plan)}", {**inputs, **sequences})[output_name], np.float32)


def is_staged(signatures: dict) -> bool:
    return "stage_0" in signatures and "cell_0" in signatures
