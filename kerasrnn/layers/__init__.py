from kerasrnn.layers.char_cnn import CharCNN
from kerasrnn.layers.crf import CRF
from kerasrnn.layers.masked_mean_max_pooling import MaskedMeanMaxPooling

__all__ = ["CRF", "CharCNN", "MaskedMeanMaxPooling"]
