"""Build a tiny random-weight Llama checkpoint with its own trained tokenizer.

Used by ``tests/test_engine_transformers.py`` and ``bench/gpu_check.py``: nothing is
downloaded, everything is made from a few sentences in a few seconds on a CPU.

The model's shape (head_dim 64) is one that vLLM's attention kernels accept, so the same
checkpoint serves both the transformers and the vLLM engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "An arena pits two language models against each other.",
    "Votes become ratings; ratings become a leaderboard.",
    "Héllo wörld, ça va? Smörgåsbord and crème brûlée.",
    "日本語のテキストも少しだけ。",
    "Emoji too: 🎉🚀 done.",
    "Streaming text arrives one token at a time.",
]


def train_tokenizer(extra_special: tuple[str, ...] = (), vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer trained on :data:`CORPUS`, with our special tokens plus ``extra_special``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [*SPECIAL_TOKENS, *extra_special]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=specials[3:],
    )


def build_tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 128,
    num_heads: int = 2,
    num_layers: int = 2,
    max_position_embeddings: int = 128,
    vocab_size: int = 320,
    suppress_eos: bool = True,
) -> Path:
    """Write a tokenizer and a random ``LlamaForCausalLM`` checkpoint (safetensors) to ``path``.

    With ``suppress_eos`` the EOS row of the (untied) output head is zeroed and every other
    row scaled up, so the model practically never ends a reply by itself: tests can rely on
    ``max_tokens`` being reached.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = train_tokenizer(vocab_size=vocab_size)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=1,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    if suppress_eos:
        with torch.no_grad():
            model.lm_head.weight.mul_(50.0)
            model.lm_head.weight[tokenizer.eos_token_id].zero_()
    model.save_pretrained(out)
    return out
