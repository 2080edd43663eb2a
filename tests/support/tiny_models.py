"""Tiny models the tests build on disk, where no real weights can be downloaded."""

from __future__ import annotations

from pathlib import Path

from servicegrid.models import MINILM_NAME, resolve_model_path


def build_tiny_cross_encoder(folder: Path, *, initializer_range: float = 0.02) -> Path:
    """A randomly initialised (seed 0) two-layer BERT cross-encoder with MiniLM's vocabulary.

    A wider ``initializer_range`` than BERT's 0.02 spreads the random scores out,
    for tests that need their order to be clear.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(MINILM_NAME)))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
        max_position_embeddings=128,
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
