"""Checks on exported GGUF files with llama.cpp itself: greedy answers (the round trip against
transformers) and the loss of the training answers (does a fine-tune survive quantization?)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.data import Message, render


def _llama(gguf: Path | str, *, lora: str = "", n_ctx: int = 512, logits_all: bool = False) -> Any:
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(gguf),
        lora_path=lora or None,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        logits_all=logits_all,
        verbose=False,
        seed=0,
    )


def greedy_llamacpp(
    gguf: Path | str, prompts: Sequence[str], *, max_tokens: int = 16, lora: str = "", n_ctx: int = 512
) -> list[list[int]]:
    """Greedy continuations (token ids) of rendered prompts; stops at an end-of-generation token."""
    llm = _llama(gguf, lora=lora, n_ctx=n_ctx)
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    results = []
    for text in prompts:
        llm.reset()
        tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
        out: list[int] = []
        for token in llm.generate(tokens, temp=0.0, top_k=1, reset=True):
            if llama_cpp.llama_vocab_is_eog(vocab, token) or len(out) >= max_tokens:
                break
            out.append(int(token))
        results.append(out)
    llm.close()
    return results


def greedy_transformers(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_tokens: int = 16) -> list[list[int]]:
    """The same with transformers (no sampling, no repetition penalty), stopping at EOS ids."""
    import torch

    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    results = []
    for text in prompts:
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = [int(t) for t in out[0, ids.shape[1] :]]
        cut = next((i for i, t in enumerate(new) if t in eos_ids), len(new))
        results.append(new[:cut])
    return results


def answer_loss(
    gguf: Path | str,
    tokenizer: Any,
    template: str,
    conversations: Sequence[Sequence[Message]],
    *,
    lora: str = "",
    n_ctx: int = 512,
) -> float:
    """Mean negative log-likelihood per token of each conversation's last answer, by llama.cpp."""
    import numpy as np

    llm = _llama(gguf, lora=lora, n_ctx=n_ctx, logits_all=True)
    total, count = 0.0, 0
    for messages in conversations:
        prompt = render(tokenizer, template, messages[:-1], generation_prompt=True)
        full = render(tokenizer, template, messages, generation_prompt=False)
        p_ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        f_ids = llm.tokenize(full.encode(), add_bos=False, special=True)
        if f_ids[: len(p_ids)] != p_ids or len(f_ids) > n_ctx:
            continue
        llm.reset()
        llm.eval(f_ids)
        logits = np.asarray(llm.scores[: len(f_ids)], dtype=np.float64)
        for pos in range(len(p_ids), len(f_ids)):
            row = logits[pos - 1]
            top = row.max()
            total += math.log(np.exp(row - top).sum()) + top - row[f_ids[pos]]
            count += 1
    llm.close()
    return total / count if count else math.nan
