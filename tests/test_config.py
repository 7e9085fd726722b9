from pathlib import Path

import pytest

from kerasrnn.config import Config

CONFIGS = sorted((Path(__file__).parents[1] / "training" / "configs").glob("*.toml"))


def test_every_shipped_config_loads_and_round_trips(tmp_path):
    names = {p.stem for p in CONFIGS}
    assert {"pos_ewt", "ner_wnut17", "intent_clinc150", "intent_banking77", "sentiment_sst2"} <= names
    for path in CONFIGS:
        config = Config.load(path)
        config.save(tmp_path / "config.toml")
        assert Config.load(tmp_path / "config.toml") == config


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[data]\ntrain_file = "a"\ntest_file = "b"\nbatchsize = 3\n', r"\[data\]: unknown key\(s\) \['batchsize'\]"),
        ('[training]\nepochs = "ten"\n', r"\[training\]: epochs must be int, got str 'ten'"),
        ('[training]\nepochs = true\n', r"epochs must be int, got a boolean"),
        ('[optimizer]\nlr = 1\n', r"unknown section\(s\) \['optimizer'\]"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\nformat = "xml"\n', "data.format must be one of"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[model]\ncell = "rnn"\n', "model.cell must be"),
        ("[data\n", "invalid TOML"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[model]\nelmo = true\n',
         "model.elmo must be false unless model.init_from names a language model run"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[model]\nelmo = true\ninit_from = "r"\nfreeze_encoder = true\n',
         "model.freeze_encoder must be false with model.elmo"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[model]\nchar_highway_layers = -1\n',
         "model.char_highway_layers must be at least 0"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[model]\nresidual = true\n',
         "model.residual must be false unless task.type is 'language_model'"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[model]\nprojection = 64\n',
         "model.projection must be 0 unless a language model with cell = \"lstm\""),
        ('[task]\ntype = "language_model"\nmetric = "perplexity"\n[data]\nformat = "tokens"\ntrain_file = "a"\n'
         'test_file = "b"\n[model]\ncell = "gru"\nprojection = 64\n', "model.projection must be 0 unless"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\nrename_types = ["=person"]\n',
         'data.rename_types must be a list of "OLD=NEW" entity type renames'),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[training]\nlabel_smoothing = 1.0\n',
         r"training.label_smoothing must be in \[0, 1\)"),
        ('[data]\ntrain_file = "a"\ntest_file = "b"\n[model]\ncrf = true\n[training]\nlabel_smoothing = 0.1\n',
         "training.label_smoothing must be 0.0 for a language model or a CRF tagger"),
    ],
)
def test_bad_configs_name_the_offending_key(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError, match=message):
        Config.load(path)


def test_integers_are_accepted_for_float_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\ntrain_file = "a"\ntest_file = "b"\n[training]\nlearning_rate = 1\n')
    assert Config.load(path).training.learning_rate == 1.0
