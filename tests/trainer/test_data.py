"""Training data: formats, validation errors that name the place, exact assistant masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer.tiny import CONVERSATIONS
from trainer import data as d
from trainer.templates import GEMMA


def write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


def test_labels_decode_to_exactly_the_assistant_turns(tokenizer, tiny_data: Path) -> None:
    conversations = d.load_conversations(str(tiny_data))
    encoded = d.encode_conversations(tokenizer, GEMMA, conversations, max_length=256)
    assert encoded.problems == [] and len(encoded.samples) == len(CONVERSATIONS)
    for sample, raw in zip(encoded.samples, CONVERSATIONS, strict=True):
        answers = [content for role, content in raw if role == "assistant"]
        spans = [tokenizer.decode(span) for span in d.labelled_spans(sample)]
        assert spans == [a + "<end_of_turn>\n" for a in answers]
        # everything unlabelled decodes to the prompts and the template around them
        unlabelled = tokenizer.decode(
            [t for t, lab in zip(sample.input_ids, sample.labels, strict=True) if lab == d.IGNORE]
        )
        assert not any(a in unlabelled for a in answers)


def test_sharegpt_and_openai_read_the_same(tmp_path: Path) -> None:
    share = tmp_path / "share.json"
    share.write_text(
        json.dumps(
            [{"id": "x1", "conversations": [{"from": "human", "value": " Hi "}, {"from": "gpt", "value": "Hello.\n"}]}]
        )
    )
    openai = write(
        tmp_path / "chat.jsonl",
        [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}],
    )
    assert d.load_conversations(str(share))[0].messages == d.load_conversations(str(openai))[0].messages


def test_bundled_seed_set_is_valid_and_varied() -> None:
    conversations = d.load_conversations("bundled:chat-seed")
    assert len(conversations) >= 300
    assert sum(len(c.messages) > 3 for c in conversations) >= 10  # multi-turn follow-ups
    records = [json.loads(line) for line in d.data_path("bundled:chat-seed").read_text().splitlines()]
    assert {"facts", "howto", "lists", "code", "refusals", "multi"} <= {r.get("category") for r in records}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "chats.jsonl line 2: not valid JSON"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "line 2: messages[0].role: unknown role 'robot'"),
        (
            {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]},
            "line 2: messages[0].content: empty turn",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            "line 2: messages[1]: turns must alternate",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}]},
            "line 2: messages[0]: the last turn must be the assistant's",
        ),
        ({"text": "hello"}, "line 2: needs a 'messages' (OpenAI) or 'conversations' (ShareGPT) field"),
        (
            {"conversations": [{"from": "alien", "value": "x"}]},
            "line 2: conversations[0].from: unknown speaker 'alien'",
        ),
    ],
)
def test_bad_conversations_name_line_and_field(tmp_path: Path, line: object, expected: str) -> None:
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    path = write(tmp_path / "chats.jsonl", [good, line])
    with pytest.raises(d.DataError) as caught:
        d.load_conversations(str(path))
    assert len(caught.value.problems) == 1
    assert expected in caught.value.problems[0]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"prompt": "Q", "chosen": "A"}, "line 1: rejected: missing"),
        ({"prompt": "Q", "chosen": "A", "rejected": "A"}, "line 1: chosen, rejected: the two answers are identical"),
        ({"prompt": "", "chosen": "A", "rejected": "B"}, "line 1: prompt: empty turn"),
        (
            {"prompt": [{"role": "assistant", "content": "x"}], "chosen": "A", "rejected": "B"},
            "line 1: prompt[0]: turns must alternate",
        ),
        (
            {"prompt": "Q", "chosen": ["A"], "rejected": "B"},
            "line 1: chosen: expected a string or one assistant message",
        ),
    ],
)
def test_bad_preferences_name_line_and_field(tmp_path: Path, record: object, expected: str) -> None:
    path = write(tmp_path / "prefs.jsonl", [record])
    with pytest.raises(d.DataError) as caught:
        d.load_preferences(str(path))
    assert expected in caught.value.problems[0]


def test_preferences_read_multi_turn_prompts_and_keep_metadata(tmp_path: Path) -> None:
    record = {
        "prompt": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Name?"},
        ],
        "chosen": "Arena.",
        "rejected": [{"role": "assistant", "content": "No."}],
        "metadata": {"model_chosen": "a"},
    }
    (pair,) = d.load_preferences(str(write(tmp_path / "p.jsonl", [record])))
    assert [m.role for m in pair.prompt] == ["user", "assistant", "user"]
    assert (pair.chosen, pair.rejected, pair.metadata) == ("Arena.", "No.", {"model_chosen": "a"})


def test_a_mask_that_cannot_be_derived_is_reported_not_zeroed(tokenizer, tiny_data: Path) -> None:
    conversations = d.load_conversations(str(tiny_data))
    # The generation prompt says "assistant" where the conversation says "model": the prompt is
    # no prefix of the conversation, so no exact mask exists.
    mismatched = GEMMA.replace("{{ '<start_of_turn>model\\n' }}", "{{ '<start_of_turn>assistant\\n' }}")
    assert mismatched != GEMMA
    encoded = d.encode_conversations(tokenizer, mismatched, conversations, max_length=256)
    assert encoded.samples == []
    assert len(encoded.problems) == len(conversations)
    assert "tokenizes differently" in encoded.problems[0] and "line 1" in encoded.problems[0]
    # A template that rewrites the answer's text is caught too.
    shouting = GEMMA.replace(
        "{{ message['content'] + '<end_of_turn>\\n' }}", "{{ message['content'] | upper + '<end_of_turn>\\n' }}"
    )
    encoded = d.encode_conversations(tokenizer, shouting, conversations[:1], max_length=256)
    assert encoded.samples == [] and "changes its text" in encoded.problems[0]


def test_long_conversations_keep_whole_answers_only(tokenizer, tiny_data: Path) -> None:
    multi = next(c for c in d.load_conversations(str(tiny_data)) if len(c.messages) == 4)
    whole = d.encode_conversation(tokenizer, GEMMA, multi, max_length=256)
    first_end = len(whole.input_ids) - len(d.labelled_spans(whole)[1])
    cut = d.encode_conversation(tokenizer, GEMMA, multi, max_length=first_end + 1)
    assert cut.truncated and len(d.labelled_spans(cut)) == 1
    with pytest.raises(d.MaskError, match="too long"):
        d.encode_conversation(tokenizer, GEMMA, multi, max_length=3)


def test_split_is_seeded_and_holds_out_at_least_one() -> None:
    items = list(range(10))
    assert d.split(items, 0.05, 1) == d.split(items, 0.05, 1)
    train, held = d.split(items, 0.05, 1)
    assert len(held) == 1 and sorted(train + held) == items
