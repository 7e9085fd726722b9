"""Starting a task model's encoder from a pre-trained run (`model.init_from`): a BiLM run or another task run.

The task keeps the pre-trained vocabulary's ids and appends its own words (and characters) after them, so
every pre-trained embedding row keeps its meaning; appended rows start from the usual initialiser. The
character CNN (with its highway layers) and recurrent layer 0 (both directions) are copied; a BiLM's upper layers
read one direction only and do not fit a bidirectional task layer, so they are not copied (a task run's upper layers
are).
"""

from __future__ import annotations

from pathlib import Path

from kerasrnn.run import load_run

# Settings that must agree between the pre-trained run and the task for the weights to fit.
SHAPE_KEYS = ("cell", "units", "embedding_dim", "char_embedding_dim", "char_filters", "char_kernel_size",
              "char_highway_layers")
DATA_KEYS = ("lowercase", "use_chars", "max_word_chars")


def load_pretrained(run_dir):
    """The pre-trained run (a `kerasrnn.run.Run`: config, model loaded with our checks and safe_mode,
    preprocessor), or an error saying how to make it."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file():
        raise FileNotFoundError(
            f"model.init_from: {run_dir} holds no model.keras; train it first "
            f"(e.g. python -m training.train --config training/configs/bilm_pretrain.toml --output-dir {run_dir})"
        )
    return load_run(run_dir)


def check_compatible(config, pre) -> None:
    """Raises ValueError naming every setting in which the task differs from the pre-trained run. With
    `model.elmo` no weight is copied, so only the inputs must agree, and the run must be a language model's."""
    from kerasrnn.models import BiLanguageModel

    elmo = config.model.elmo
    shape_keys = () if elmo else SHAPE_KEYS
    diffs = [f"model.{k}: {getattr(config.model, k)!r} here, {getattr(pre.config.model, k)!r} there"
             for k in shape_keys if getattr(config.model, k) != getattr(pre.config.model, k)]
    diffs += [f"data.{k}: {getattr(config.data, k)!r} here, {getattr(pre.config.data, k)!r} there"
              for k in DATA_KEYS if getattr(config.data, k) != getattr(pre.config.data, k)]
    if config.model.bidirectional is False and not elmo:
        diffs.append("model.bidirectional: false here; the pre-trained layer 0 has both directions")
    if pre.config.model.projection and not elmo:
        diffs.append(f"model.projection: {pre.config.model.projection} there (LSTMP layers, which no task encoder "
                     "has): read that run with model.elmo = true")
    if elmo and not isinstance(pre.model, BiLanguageModel):
        diffs.append("model.elmo: true here, but the run is a task model's; ELMo features come from a language "
                     "model run")
    if diffs:
        raise ValueError(f"model.init_from = {config.model.init_from!r} does not fit this config: " + "; ".join(diffs))


def _sources(model):
    """(token embedding, char CNN or None, [(forward, backward) layers that can start a task layer]) of a
    pre-trained BiLM or task model."""
    from kerasrnn.models import BiLanguageModel

    if isinstance(model, BiLanguageModel):
        return model.token_embedding, model.char_cnn, [(model.forward_layers[0], model.backward_layers[0])]
    enc = model.encoder
    return enc.token_embedding, enc.char_cnn, enc.recurrent_directions


def transfer_weights(task_model, pre, freeze: bool = False) -> list[str]:
    """Copies the pre-trained embedding rows, character CNN and recurrent layers into the task model's encoder;
    returns the names of the layers it wrote. With `freeze`, those layers stop training."""
    enc = task_model.encoder
    written = []
    src_emb, src_cnn, src_pairs = _sources(pre.model)
    dst_emb = enc.token_embedding
    table = dst_emb.get_weights()[0]
    source = src_emb.get_weights()[0]
    table[: len(source)] = source
    dst_emb.set_weights([table])
    written.append(dst_emb)
    if src_cnn is not None:
        dst_cnn = enc.char_cnn
        chars = dst_cnn.embedding.get_weights()[0]
        src_chars = src_cnn.embedding.get_weights()[0]
        chars[: len(src_chars)] = src_chars
        dst_cnn.embedding.set_weights([chars])
        dst_cnn.conv.set_weights(src_cnn.conv.get_weights())
        for dst, src in zip(dst_cnn.highways, src_cnn.highways, strict=True):
            dst.set_weights(src.get_weights())
        written.append(dst_cnn)
    for bi, (fw, bw) in zip(enc.recurrent_layers, src_pairs, strict=False):
        bi.forward_layer.set_weights(fw.get_weights())
        bi.backward_layer.set_weights(bw.get_weights())
        written.append(bi)
    if freeze:
        for layer in written:
            layer.trainable = False
    return [layer.name for layer in written]
