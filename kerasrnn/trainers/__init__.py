"""Training: task models and the BiLM, callbacks, checkpoints and resume, distribution, transfer, evaluation."""

from kerasrnn.trainers.checkpoints import TrainingDiverged
from kerasrnn.trainers.evaluation import evaluate, perplexity, predict
from kerasrnn.trainers.task import train

__all__ = ["TrainingDiverged", "evaluate", "perplexity", "predict", "train"]
