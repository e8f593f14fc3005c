"""Chat templates for bases whose tokenizer carries none (GGUF files usually don't).

Each renders exactly what the arena's llama.cpp engine sends for the same turn format
(``app/engines/chat_formats.py``), so a model is trained on the prompts it is later served. The
BOS token is part of the template; llama.cpp adds it itself at serving time.
"""

from __future__ import annotations

from trainer.errors import TrainError

# Gemma has no system role: system text opens the first user turn, separated by a blank line.
GEMMA = (
    "{{ bos_token }}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for message in messages if message['role'] in ('system', 'developer') -%}"
    "{%- set ns.system = ns.system + ('\\n\\n' if ns.system else '') + message['content'] -%}"
    "{%- endfor -%}"
    "{%- set turns = messages | rejectattr('role', 'in', ['system', 'developer']) | list -%}"
    "{%- for message in turns -%}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\\n' }}"
    "{%- if loop.first and ns.system -%}{{ ns.system + '\\n\\n' }}{%- endif -%}"
    "{{ message['content'] + '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if not turns and ns.system -%}{{ '<start_of_turn>user\\n' + ns.system + '<end_of_turn>\\n' }}{%- endif -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

LLAMA3 = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}"
)

TEMPLATES = {"gemma": GEMMA, "chatml": CHATML, "llama-3": LLAMA3}


def template_for(chat_format: str) -> str:
    try:
        return TEMPLATES[chat_format]
    except KeyError:
        known = ", ".join([*TEMPLATES, "template"])
        raise TrainError(f"unknown chat format {chat_format!r}; known: {known}") from None
