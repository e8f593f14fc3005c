"""Arena's trainer: fine-tune a model on chats or arena votes, and put the result back into the arena.

Heavy libraries (torch, transformers, peft, trl) are imported inside the functions that need them,
so ``import trainer`` stays cheap and works without the ``train`` extra.
"""
