"""training.benchmark without PyTorch: the message, the figures' arithmetic, the padding report, the saved batches."""

import json

import numpy as np
import pytest

from benchmarks import train_throughput as tb
from tests.test_training import tagging_file, write_config
from training import benchmark as cli


def test_without_torch_the_command_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    assert cli.main(["--config", "x.toml", "--output-dir", str(tmp_path)]) == 3
    assert 'pip install -e ".[bench]"' in capsys.readouterr().err


def test_summary_counts_only_the_steps_after_warm_up():
    steps = tb.WARMUP_STEPS + 4
    raw = {"ends": [0.5 * i for i in range(steps)], "waits": [0.01] * steps, "tokens": [100] * steps,
           "losses": [2.0] * steps, "peak_rss_mb": 123.4}
    s = tb.summarise(raw)
    assert s["steps_timed"] == 4  # the diffs after the warm-up steps
    assert s["nonpad_tokens_per_second"] == pytest.approx(400 / 2.0)
    assert s["ms_per_step"] == pytest.approx(500.0)
    assert s["data_wait_fraction"] == pytest.approx(0.04 / 2.0)


def varied_file(path, n, seed):
    """Sentences of 2 to 60 tokens, so that length buckets matter."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        for k in range(int(rng.integers(2, 61))):
            lines.append(f"{k + 1}\tw{k % 7}\tw\t{'NOUN' if k % 2 else 'VERB'}\t_\t_\t0\tdep\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    files = [varied_file(tmp / "train.conllu", 300, 0), tagging_file(tmp / "dev.conllu", 10, 1),
             tagging_file(tmp / "test.conllu", 10, 2)]
    return tmp, write_config(tmp, *files)


def test_bucketing_pads_less_than_plain_batches(tiny):
    _, config = tiny
    cfg, data, _, _ = tb.load_case(str(config), "real", seed=0)
    pads = tb.padding_report(cfg, data, seed=0)
    assert 0 <= pads["bucketed"] < pads["unbucketed"] < 1


def test_saved_batches_are_what_both_sides_train_on(tiny):
    tmp, config = tiny
    cfg, data, vocab_size, num_labels = tb.load_case(str(config), "real", seed=0)
    batches = tb.batches_for(cfg, data, steps=6, seed=0)
    assert len(batches) == 6 + tb.WARMUP_STEPS
    assert [b.tolist() for b in batches] == [b.tolist() for b in tb.batches_for(cfg, data, steps=6, seed=0)]
    path = tb.save_batches(cfg, data, batches, vocab_size, num_labels, tmp / "b.npz")
    saved = np.load(path)
    meta = json.loads(str(saved["meta"]))
    assert meta["num_batches"] == len(batches) and meta["vocab_size"] == vocab_size
    # the embedding rows training can reach, as training.train builds the model (both sides train only those)
    assert meta["trainable_rows"] == 1 + max(int(ids.max()) for ids in data.token_ids) <= vocab_size
    for i, index in enumerate(batches):
        tok = saved[f"tok_{i}"]
        assert tok.shape == (len(index), int(data.lengths[index].max()))
        assert (tok != 0).sum() == int(data.lengths[index].sum())
        assert saved[f"tgt_{i}"].shape == tok.shape


def test_repeated_runs_give_medians_and_the_largest_peak_memory():
    runs = [{"nonpad_tokens_per_second": t, "ms_per_step": m, "ms_per_step_mean": m + 1, "data_wait_fraction": w,
             "peak_rss_mb": rss, "steps_timed": 95, "first_loss": 3.0, "last_loss": 1.0, "calibration_ms": cal}
            for (t, m, w, rss), cal in zip([(900.0, 40.0, 0.01, 700.0), (1200.0, 30.0, 0.03, 650.0),
                                            (1000.0, 35.0, 0.02, 720.0)],
                                           [[10.0, 12.0], [11.0, 30.0], [9.0, 10.5]], strict=True)]
    c = tb.combine(runs)
    assert c["nonpad_tokens_per_second"] == 1000.0 and c["ms_per_step"] == 35.0 and c["ms_per_step_mean"] == 36.0
    assert c["data_wait_fraction"] == 0.02 and c["peak_rss_mb"] == 720.0
    assert c["runs_tokens_per_second"] == [900.0, 1200.0, 1000.0]
    assert c["calibration_ms"] == 10.75  # the median of every before and after figure


def test_the_calibration_workload_times_a_fixed_matmul():
    from benchmarks.calibration import calibration_ms

    assert 0.1 < calibration_ms(repeats=3, warmup=1) < 10_000


def test_real_long_rows_join_real_sentences_with_their_targets(tiny):
    _, config = tiny
    cfg, data, _, _ = tb.load_case(str(config), "real", seed=0)
    cfg_long, long, _, _ = tb.load_case(str(config), "real_long", seed=0)
    rows, k = tb.REAL_LONG
    assert cfg_long.training.batch_size == rows and len(long) == -(-len(data) // k)
    np.testing.assert_array_equal(long.token_ids[1], np.concatenate(data.token_ids[k : 2 * k]))
    np.testing.assert_array_equal(long.targets[1], np.concatenate(data.targets[k : 2 * k]))
    assert long.lengths.sum() == data.lengths.sum()
    batches = tb.batches_for(cfg_long, long, steps=4, seed=0)
    spread = [np.ptp(long.lengths[b]) for b in batches]
    assert np.median(spread) < np.ptp(long.lengths)  # bucketed: rows of a batch have similar lengths


def test_repeats_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        tb.benchmark("x.toml", tmp_path, repeats=0)


@pytest.mark.parametrize("cell", ["lstm", "sru"])
def test_the_layer_side_trains_the_recurrent_layer_alone_on_the_saved_batches(tiny, cell):
    tmp, config = tiny
    cfg, data, vocab_size, num_labels = tb.load_case(str(config), "real", seed=0)
    batches = tb.batches_for(cfg, data, steps=20, seed=0)
    path = tb.save_batches(cfg, data, batches, vocab_size, num_labels, tmp / f"layer_{cell}.npz")
    summary = tb.run_side(f"layer_{cell}", path, threads=1)  # its own worker process, as in the benchmark
    assert summary["steps_timed"] == 20
    saved = np.load(path)
    assert summary["nonpad_tokens_per_second"] > 0
    # the loss (mean squared output over valid positions) falls as the optimizer drives the outputs to zero
    assert summary["last_loss"] < 0.8 * summary["first_loss"]
    inputs = tb.layer_inputs(saved, json.loads(str(saved["meta"])), seed=0)
    assert [m.sum() for _, m in inputs] == [int(data.lengths[b].sum()) for b in batches]


def test_throughput_ratios_are_of_the_medians_and_run_by_run():
    def side(*tps):
        return [{"nonpad_tokens_per_second": t} for t in tps]

    runs = {"ours": side(300.0, 200.0, 250.0), "pytorch": side(100.0, 200.0, 125.0)}
    row = {name: tb.combine([{**r, "ms_per_step": 1.0, "ms_per_step_mean": 1.0, "data_wait_fraction": 0.0,
                              "peak_rss_mb": 1.0, "calibration_ms": [1.0]} for r in side_runs])
           for name, side_runs in runs.items()}
    assert tb.throughput_ratio(row, runs, "ours", "pytorch") == (2.0, [3.0, 1.0, 2.0])  # 250 / 125
