from kerasrnn.layers.char_cnn import CharCNN
from kerasrnn.layers.crf import CRF
from kerasrnn.layers.elmo import ELMo
from kerasrnn.layers.lstmp import LSTMP
from kerasrnn.layers.masked_mean_max_pooling import MaskedMeanMaxPooling
from kerasrnn.layers.recurrent import GRU, LSTM
from kerasrnn.layers.scalar_mix import ScalarMix
from kerasrnn.layers.sru import SRU
from kerasrnn.layers.token_embedding import TokenEmbedding

__all__ = ["CRF", "ELMo", "GRU", "LSTM", "LSTMP", "SRU", "CharCNN", "MaskedMeanMaxPooling", "ScalarMix", "TokenEmbedding"]
