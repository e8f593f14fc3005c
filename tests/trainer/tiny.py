"""A tiny Gemma-3-style model with a byte-level BPE tokenizer trained here, for the trainer tests.

Nothing is downloaded. The shape follows Gemma 3 closely enough for llama.cpp's ``gemma3``
architecture to load the converted file: six layers in llama.cpp's fixed pattern of five
sliding-window layers and one global layer, head_dim as the query scale, tied embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

CONVERSATIONS = [
    [("user", "What is the capital of France?"), ("assistant", "Paris.")],
    [("user", "What is 2 plus 2?"), ("assistant", "4.")],
    [("user", "Name a colour."), ("assistant", "Blue.")],
    [("user", "Say hello."), ("assistant", "Hello there!")],
    [
        ("user", "Who wrote Hamlet?"),
        ("assistant", "Shakespeare."),
        ("user", "When?"),
        ("assistant", "Around 1600."),
    ],
    [("system", "Answer briefly."), ("user", "Is water wet?"), ("assistant", "Yes.")],
    [("user", "Count to three."), ("assistant", "One, two, three.")],
    [("user", "What colour is the sky?"), ("assistant", "The sky is blue on a clear day.")],
]


def conversations_jsonl(path: Path, conversations: list[list[tuple[str, str]]] | None = None) -> Path:
    with path.open("w") as f:
        for conv in conversations or CONVERSATIONS:
            f.write(json.dumps({"messages": [{"role": r, "content": c} for r, c in conv]}) + "\n")
    return path


def corpus() -> list[str]:
    texts = [content for conv in CONVERSATIONS for _, content in conv]
    texts += ["user", "model", "system", "The quick brown fox jumps over the lazy dog. 0123456789"]
    return texts


def build_tiny_gemma(
    path: Path, *, seed: int = 0, hidden: int = 64, sliding_window: int = 16, initializer_range: float = 0.2
) -> Path:
    """Write a tokenizer (with no chat template: tests name the turn format) and a random model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=6,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        max_position_embeddings=256,
        sliding_window=sliding_window,
        layer_types=["sliding_attention"] * 5 + ["full_attention"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
        # Wider than the default 0.02, so the tied output layer can give confident logits through
        # LoRA on the linear layers alone (with 0.02 logits stay near uniform unless embeddings move).
        initializer_range=initializer_range,
    )
    model = Gemma3ForCausalLM(config)
    model.save_pretrained(path)
    return path
