from __future__ import annotations

from app.engines.base import ChatMessage
from app.engines.chat_formats import gemma
from app.engines.stops import StopMatcher


def _run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    m = StopMatcher(stops)
    out = []
    for p in pieces:
        text, hit = m.feed(p)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + m.flush(), False


def test_stop_split_across_pieces_is_never_emitted() -> None:
    assert _run(["END"], ["hello E", "N", "D tail"]) == ("hello ", True)
    assert _run(["END"], ["hello E", "NX"]) == ("hello ENX", False)
    assert _run(["\n\n", "###"], ["a\n", "b##", "#c"]) == ("a\nb", True)
    assert _run([], ["x", "y"]) == ("xy", False)


def test_held_text_is_released_at_the_end() -> None:
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == ("abc ", False)
    assert m.flush() == "ST"


def test_gemma_turn_format() -> None:
    prompt = gemma(
        [
            ChatMessage("system", "Be kind."),
            ChatMessage("user", "Hi"),
            ChatMessage("assistant", "Hello!"),
            ChatMessage("user", "Bye"),
        ]
    )
    assert prompt.text == (
        "<start_of_turn>user\nBe kind.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert prompt.stop == ("<end_of_turn>", "<start_of_turn>")
