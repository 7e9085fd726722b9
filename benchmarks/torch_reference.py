"""The PyTorch reference of the seed's model, trained on batches saved by `benchmarks.train_throughput`.

Imports NumPy and PyTorch only (no TensorFlow in this process, so its peak RSS is PyTorch's own):
nn.Embedding(padding_idx=0) (its rows from `trainable_rows` on a fixed buffer, as our side holds them) ->
bidirectional nn.LSTM over `pack_padded_sequence` -> Linear projection -> Linear head,
Adam (0.9, 0.999) with gradient-norm clipping and a cosine schedule with linear warm-up.

`python -m benchmarks.torch_reference BATCHES.npz THREADS` (from the repository root) prints one `RESULT {json}` line.
"""

import json
import math
import resource
import sys
import time

import numpy as np


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path, threads = argv[0], int(argv[1])
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from benchmarks.calibration import calibration_ms

    calibration_before = calibration_ms()
    saved = np.load(path)
    meta = json.loads(str(saved["meta"]))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(meta["seed"])

    class Reference(nn.Module):
        def __init__(self):
            super().__init__()
            # the rows no training row reads are a buffer, not a parameter (as kerasrnn.layers.TokenEmbedding)
            self.rows = meta["trainable_rows"]
            self.embedding = nn.Embedding(self.rows, meta["embedding_dim"], padding_idx=0)
            self.register_buffer("fixed", torch.randn(meta["vocab_size"] - self.rows, meta["embedding_dim"]))
            self.lstm = nn.LSTM(meta["embedding_dim"], meta["units"], num_layers=meta["num_layers"],
                                batch_first=True, bidirectional=True,
                                dropout=meta["dropout"] if meta["num_layers"] > 1 else 0.0)
            self.dropout = nn.Dropout(meta["dropout"])
            self.projection = nn.Linear(2 * meta["units"], meta["output_dim"])
            self.head = nn.Linear(meta["output_dim"], meta["num_labels"])
            for name, p in self.named_parameters():
                if p.dim() == 2 and "embedding" not in name:
                    nn.init.xavier_uniform_(p)

        def forward(self, tokens, lengths):
            x = self.embedding(tokens.clamp(max=self.rows - 1))
            if len(self.fixed):
                fixed = nn.functional.embedding((tokens - self.rows).clamp(min=0), self.fixed)
                x = torch.where((tokens < self.rows)[..., None], x, fixed)
            x = self.dropout(x)
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
            return self.head(self.dropout(self.projection(self.dropout(out))))

    model = Reference()
    optimizer = torch.optim.Adam(model.parameters(), lr=meta["learning_rate"], betas=(0.9, 0.999))
    total = meta["num_batches"]
    warmup = max(int(meta["warmup_fraction"] * total), 1)
    floor = meta["min_learning_rate_ratio"]

    def schedule(step):
        if step < warmup:
            return step / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    loss_fn = nn.CrossEntropyLoss()
    ends, waits, tokens_seen, losses = [], [], [], []
    for i in range(total):
        start = time.perf_counter()
        tokens = torch.from_numpy(saved[f"tok_{i}"]).long()
        targets = torch.from_numpy(saved[f"tgt_{i}"]).long()
        mask = tokens != 0
        lengths = mask.sum(1)
        waits.append(time.perf_counter() - start)
        logits = model(tokens, lengths)
        loss = loss_fn(logits[mask], targets[mask])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), meta["clipnorm"])
        optimizer.step()
        scheduler.step()
        ends.append(time.perf_counter())
        tokens_seen.append(int(lengths.sum()))
        losses.append(float(loss))
    result = {"ends": ends, "waits": waits, "tokens": tokens_seen, "losses": losses,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
              "calibration_ms": [calibration_before, calibration_ms()]}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
