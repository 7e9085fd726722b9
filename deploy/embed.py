"""Contextual vs static vectors of ambiguous words, from real sentences of the corpora, in 2-D (PCA).

`python -m deploy.embed --run-dir runs/bilm_pretrain [--words bank,play,light,spring] [--per-word 60]`

For each word it gathers up to `--per-word` sentences of the run's training and test text that contain it,
embeds them with `kerasrnn.Embedder`, and writes `RUN_DIR/embed/contexts.png` (one PCA panel per word for the
contextual layer, coloured by a sense hint read off cue words in the sentence, and one panel for the static
layer), `RUN_DIR/embed/contexts.json`, and prints each sampled occurrence's nearest neighbours.
The sense hint is a heuristic: the sense whose cue words occur most often in the sentence (none: grey).

A thin wrapper of `kerasrnn embed` (kerasrnn.cli).
"""

import sys

from kerasrnn.cli import module_main

main = module_main("embed")

if __name__ == "__main__":
    sys.exit(main())
