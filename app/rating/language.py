"""A plain language guess for prompts (for the leaderboard's per-language categories).

Script first (CJK, Cyrillic, Arabic...), then common function words for Latin-script languages.
No model, no download: good enough to split a leaderboard, not a general detector.
"""

from __future__ import annotations

import re
import unicodedata

_WORDS = {
    "en": "the and is are you what how to of in that this it for with can why hello hi please me my",
    "es": "el la los las que es de y en por para con una un cómo qué hola estás estas muy pero",
    "fr": "le la les est et des une un que qui pour avec dans pas vous je",
    "de": "der die das und ist nicht ein eine ich du wie was mit für auf",
    "it": "il lo la gli che è e di un una per con come non sono",
    "pt": "o a os as que é de e um uma para com como não você",
}
_INDEX = {lang: set(words.split()) for lang, words in _WORDS.items()}
_SCRIPTS = [
    ("ja", ("HIRAGANA", "KATAKANA")),
    ("ko", ("HANGUL",)),
    ("zh", ("CJK",)),
    ("ru", ("CYRILLIC",)),
    ("ar", ("ARABIC",)),
    ("hi", ("DEVANAGARI",)),
    ("el", ("GREEK",)),
    ("he", ("HEBREW",)),
    ("th", ("THAI",)),
]


def detect_language(text: str) -> str:
    letters = [c for c in text[:2000] if c.isalpha()]
    if not letters:
        return "unknown"
    names = [unicodedata.name(c, "") for c in letters]
    for lang, scripts in _SCRIPTS:
        share = sum(1 for n in names if n.startswith(scripts)) / len(names)
        if share > (0.05 if lang == "ja" else 0.3):
            return lang
    words = re.findall(r"[^\W\d_]+", text.lower())
    scores = {lang: sum(w in vocab for w in words) for lang, vocab in _INDEX.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "unknown"
