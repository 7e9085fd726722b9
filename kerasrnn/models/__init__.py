from kerasrnn.models.bilm import BiLanguageModel
from kerasrnn.models.contextual_encoder import ContextualEncoder
from kerasrnn.models.sequence_tagger import SequenceTagger
from kerasrnn.models.task import Task
from kerasrnn.models.text_classifier import TextClassifier

__all__ = ["BiLanguageModel", "ContextualEncoder", "SequenceTagger", "Task", "TextClassifier"]
