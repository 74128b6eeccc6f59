"""A tiny random BERT (a few hundred KB) for tests and smoke runs: same code path, seconds to train."""

from __future__ import annotations

import string
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "my order where is refund return shipping late delayed payment card failed account login password "
    "locked gift price match cheaper coat swimwear jacket boots the a i to it not can you please help "
    "want was is of for and on with how do money back item package arrived yet still charged twice "
    "reset access balance code size color available stock does have"
).split()


def build_tiny_bert(out_dir: str | Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a random-weight BERT encoder and a WordPiece tokenizer to ``out_dir``; return the folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIAL + chars + ["##" + c for c in string.ascii_lowercase + string.digits] + sorted(set(WORDS))
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))}, do_lower_case=True)
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(out)
    return out
