"""Export settings."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """Args:
    calibration_sentences: int. Training sentences used to calibrate full int8 (300 cost SST-2 2.6 points of
        accuracy in the fused int8 LSTM; 2000 kept it within 0.1). Defaults to 2000.
    calibration_length: int. Tokens per calibration row. Defaults to 32.
    parity_sentences: int. Test sentences for the padding check. Defaults to 200.
    extra_padding: int. Pad positions appended in the padding check. Defaults to 9.
    latency_tokens: int. Sentence length of the latency figure in the report. Defaults to 32.
    latency_runs: int. Timed calls per artifact (after warm-up). Defaults to 100.
    seed: int. Seed of the calibration sample. Defaults to 0.
    int8_fixed_length: int. Also write `model_int8_len{N}.tflite`: full int8 with the recurrences unrolled over
        exactly N positions (rows right-padded to N; longer rows rejected). On x86 it runs several times faster
        than the fused int8 LSTM kernel. None skips it.
        Defaults to 32.
    int8_chunk: int. Also write `model_int8_staged.tflite`: full int8 at any length, the graph cut at its
        recurrences into stages and each recurrence run in explicit-state chunks of this many unrolled steps
        (`kerasrnn.export.staged`). None skips it. Defaults to 8 (16 ran as fast on pos_ewt and wrote a 3-9%
        larger file: each unrolled step adds its ops).
    stream_chunk: int. Tokens of the `chunk` signature of the streaming files (`model_stream_fp32.tflite`,
        `model_stream_int8.tflite`), written for models whose recurrences all read forwards and for a BiLM's
        forward direction (`kerasrnn.export.streaming`). None skips them. Defaults to 8.
    prune_sparsity: float. If set, also fine-tune a magnitude-pruned copy at this sparsity (tfmot) and export it
        as `model_pruned.tflite`. Defaults to None.
    prune_steps: int. Fine-tuning steps of the pruned copy. Defaults to 200.
    embedder_sentences: int. Test sentences on which an embedder (BiLM) export is checked. Defaults to 1000.
    """

    calibration_sentences: int = 2000
    calibration_length: int = 32
    parity_sentences: int = 200
    extra_padding: int = 9
    latency_tokens: int = 32
    latency_runs: int = 100
    seed: int = 0
    int8_fixed_length: int | None = 32
    int8_chunk: int | None = 8
    stream_chunk: int | None = 8
    prune_sparsity: float | None = None
    prune_steps: int = 200
    embedder_sentences: int = 1000
