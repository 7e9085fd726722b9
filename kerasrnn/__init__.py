"""kerasrnn: contextual word vectors from recurrent networks, trained in Keras 3 and shipped to the edge."""

from kerasrnn import layers, losses, metrics, models, optimizers, text
from kerasrnn.embedder import Embedder
from kerasrnn.models import BiLanguageModel, ContextualEncoder, SequenceTagger, TextClassifier
from kerasrnn.text import Vocabulary, WordTokenizer

__version__ = "0.1.0"
__all__ = [
    "BiLanguageModel",
    "ContextualEncoder",
    "Embedder",
    "SequenceTagger",
    "TextClassifier",
    "Vocabulary",
    "WordTokenizer",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "text",
]
