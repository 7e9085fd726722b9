from kerasrnn.layers.char_cnn import CharCNN
from kerasrnn.layers.crf import CRF
from kerasrnn.layers.masked_mean_max_pooling import MaskedMeanMaxPooling
from kerasrnn.layers.sru import SRU

__all__ = ["CRF", "SRU", "CharCNN", "MaskedMeanMaxPooling"]
