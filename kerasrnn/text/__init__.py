from kerasrnn.text.tokenizer import WordTokenizer, char_ids, clean_text
from kerasrnn.text.vocabulary import PAD_ID, PAD_TOKEN, UNK_ID, UNK_TOKEN, Vocabulary

__all__ = ["PAD_ID", "PAD_TOKEN", "UNK_ID", "UNK_TOKEN", "Vocabulary", "WordTokenizer", "char_ids", "clean_text"]
