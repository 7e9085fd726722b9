"""training.recipes: the ablation file parses into valid configs, finished runs are reused, the tables read the runs."""

import json

import pytest

from kerasrnn.config import Config
from training import recipes


def test_every_ablation_variant_is_a_valid_change_of_its_recipe():
    variants = recipes.read_ablations(recipes.ABLATIONS)
    assert set(variants) <= set(recipes.RECIPES)
    for name, entries in variants.items():
        base = Config.load(recipes.CONFIGS / f"{name}.toml")
        slugs = [recipes.slug(v["lever"]) for v in entries]
        assert len(set(slugs)) == len(slugs), name
        for variant in entries:
            changed = recipes.variant_config(base, variant)  # unknown keys or bad values raise here
            Config.from_dict(changed.to_dict())
            assert changed != base, variant["lever"]


def test_every_run_a_variant_starts_from_is_trained_before_it():
    """`training.recipes --ablations` trains in RECIPES order, each recipe's variants after it: a variant's init_from
    must be an earlier recipe's run or one of its variants', and an LSTMP BiLM only feeds ELMo (no task layer has its
    shape)."""
    variants = recipes.read_ablations(recipes.ABLATIONS)
    order = {name: i for i, name in enumerate(recipes.RECIPES)}
    runs = {}  # the path of every run training.recipes trains -> its config
    for name in recipes.RECIPES:
        runs[f"runs/{name}"] = base = Config.load(recipes.CONFIGS / f"{name}.toml")
        for v in variants.get(name, []):
            runs[f"runs/ablations/{name}/{recipes.slug(v['lever'])}"] = recipes.variant_config(base, v)
    for name, entries in variants.items():
        for variant in entries:
            changed = runs[f"runs/ablations/{name}/{recipes.slug(variant['lever'])}"]
            source = changed.model.init_from
            if not source:
                continue
            parts = source.split("/")
            source_recipe = parts[2] if parts[1] == "ablations" else parts[1]
            assert source in runs and order[source_recipe] < order[name], variant["lever"]
            assert changed.model.elmo or not runs[source].model.projection, variant["lever"]


def test_a_broken_ablation_entry_is_named(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[[pos_ewt]]\nmodel = { units = 8 }\n')
    with pytest.raises(ValueError, match=r"\[\[pos_ewt\]\] entry 1 needs a lever"):
        recipes.read_ablations(path)


def _finished_run(out, config, test):
    out.mkdir(parents=True)
    config.save(out / "config.toml")
    metrics = {"metric": "accuracy", "dev": {"accuracy": test - 0.01}, "test": {"accuracy": test},
               "train_seconds": 90.0, "epochs": 4, "best_epoch": 3, "parameters": 1234}
    (out / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def test_finished_runs_are_reused_and_the_tables_are_written_from_them(tmp_path, monkeypatch):
    config = Config.load(recipes.CONFIGS / "sentiment_sst2.toml")
    metrics = _finished_run(tmp_path / "sentiment_sst2", config, 0.85)
    monkeypatch.setattr(recipes.subprocess, "run", lambda *a, **k: pytest.fail("a finished run was retrained"))
    metrics = recipes.train_once(config, tmp_path / "sentiment_sst2", force=False)
    assert metrics["test"] == {"accuracy": 0.85} and metrics["optimizer"] == "-"
    recipes.write_results([("sentiment_sst2", config, metrics)], tmp_path)
    table = (tmp_path / "results.md").read_text()
    # the optimizer column reads the run's model.keras, which this stand-in run has not
    assert ("| sentiment_sst2 | accuracy | 0.8400 | 0.8500 | 1.5 | 4 (3) | 1,234 | 1 x lstm 128 | glove-6b-50d | "
            "- |") in table
    assert json.loads((tmp_path / "results.json").read_text())["sentiment_sst2"]["test"] == 0.85
    other = _finished_run(tmp_path / "variant", config, 0.83)
    recipes.write_ablations({"sentiment_sst2": [("this recipe", metrics), ("no vectors", other)]}, tmp_path)
    assert "| no vectors | 0.8200 | 0.8300 | -0.0200 | 1.5 |" in (tmp_path / "ablations.md").read_text()


def test_a_changed_config_is_trained_again(tmp_path, monkeypatch):
    config = Config.load(recipes.CONFIGS / "sentiment_sst2.toml")
    _finished_run(tmp_path / "r", config, 0.85)
    (tmp_path / "r" / "export").mkdir()  # the old run's export must not survive beside the new model
    calls = []

    class Done:
        returncode = 0

    def fake_run(command, **kwargs):
        calls.append(command)
        assert not (tmp_path / "r" / "export").exists()
        (tmp_path / "r" / "metrics.json").write_text('{"test": {"accuracy": 0.5}}')
        return Done()

    monkeypatch.setattr(recipes.subprocess, "run", fake_run)
    assert recipes.train_once(config.replace("training", seed=99), tmp_path / "r", force=False)["test"] == {
        "accuracy": 0.5}
    assert calls and calls[0][-4:] == ["--config", str(tmp_path / "r.toml"), "--output-dir", str(tmp_path / "r")]
    assert Config.load(tmp_path / "r.toml").training.seed == 99


def test_the_optimizer_column_reads_what_the_model_was_compiled_with(tmp_path):
    import keras

    from kerasrnn.optimizers import FusedAdam

    inputs = keras.Input((2,))
    for optimizer, name in ((FusedAdam(), "FusedAdam"), (keras.optimizers.Adam(), "Adam (Keras)")):
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer=optimizer, loss="mse")
        model.save(tmp_path / "model.keras")
        assert recipes.optimizer_of(tmp_path) == name
