"""Prompt languages as ISO 639-1 codes, the one code system of the leaderboard's categories.

:func:`detect_language` guesses a prompt's language with py3langid (a maintained naive-Bayes
detector whose model ships in the package: nothing is downloaded). Short prompts carry too few
character n-grams for its full 97-language model, so they are scored among the languages
arena prompts are usually written in, and a handful of one-word greetings are known outright.
:func:`language_code` maps what imports carry (FastChat's "English", "Chinese"...) to the
same codes. Anything else is "unknown".
"""

from __future__ import annotations

import functools
import re
from typing import Any

UNKNOWN = "unknown"

NAMES = {
    "afrikaans": "af", "albanian": "sq", "amharic": "am", "arabic": "ar", "armenian": "hy",
    "azerbaijani": "az", "basque": "eu", "belarusian": "be", "bengali": "bn", "bosnian": "bs",
    "breton": "br", "bulgarian": "bg", "burmese": "my", "catalan": "ca", "chinese": "zh",
    "croatian": "hr", "czech": "cs", "danish": "da", "dutch": "nl", "english": "en",
    "esperanto": "eo", "estonian": "et", "faroese": "fo", "filipino": "tl", "finnish": "fi",
    "french": "fr", "galician": "gl", "georgian": "ka", "german": "de", "greek": "el",
    "gujarati": "gu", "haitian creole": "ht", "hausa": "ha", "hebrew": "he", "hindi": "hi",
    "hungarian": "hu", "icelandic": "is", "indonesian": "id", "irish": "ga", "italian": "it",
    "japanese": "ja", "javanese": "jv", "kannada": "kn", "kazakh": "kk", "khmer": "km",
    "korean": "ko", "kurdish": "ku", "kyrgyz": "ky", "lao": "lo", "latin": "la", "latvian": "lv",
    "lithuanian": "lt", "luxembourgish": "lb", "macedonian": "mk", "malagasy": "mg", "malay": "ms",
    "malayalam": "ml", "maltese": "mt", "marathi": "mr", "mongolian": "mn", "nepali": "ne",
    "norwegian": "no", "norwegian bokmal": "nb", "norwegian nynorsk": "nn", "occitan": "oc",
    "pashto": "ps", "persian": "fa", "polish": "pl", "portuguese": "pt", "punjabi": "pa",
    "romanian": "ro", "russian": "ru", "scottish gaelic": "gd", "serbian": "sr", "sinhala": "si",
    "slovak": "sk", "slovenian": "sl", "somali": "so", "spanish": "es", "swahili": "sw",
    "swedish": "sv", "tagalog": "tl", "tajik": "tg", "tamil": "ta", "tatar": "tt", "telugu": "te",
    "thai": "th", "turkish": "tr", "turkmen": "tk", "ukrainian": "uk", "urdu": "ur", "uyghur": "ug",
    "uzbek": "uz", "vietnamese": "vi", "welsh": "cy", "xhosa": "xh", "yoruba": "yo", "zulu": "zu",
    "chinese (simplified)": "zh", "chinese (traditional)": "zh", "cantonese": "zh", "farsi": "fa",
}  # fmt: skip
"""English language names (lower case) -> ISO 639-1, for imported rows."""

# py3langid labels outside ISO 639-1 that belong to a 639-1 macrolanguage
_MACRO = {"yue": "zh", "wuu": "zh", "ary": "ar", "arz": "ar", "uzs": "uz", "gug": "gn"}
_COMMON = [
    "en",
    "zh",
    "es",
    "fr",
    "de",
    "it",
    "pt",
    "ru",
    "ja",
    "ko",
    "pl",
    "nl",
    "uk",
    "vi",
    "id",
    "tr",
    "ar",
    "fa",
    "hi",
]
_GREETINGS = {
    "hi": "en", "hello": "en", "hey": "en", "thanks": "en", "thank you": "en", "ok": "en", "okay": "en",
    "hola": "es", "gracias": "es", "bonjour": "fr", "salut": "fr", "merci": "fr", "hallo": "de",
    "danke": "de", "ciao": "it", "grazie": "it", "olá": "pt", "obrigado": "pt", "привет": "ru",
    "спасибо": "ru", "你好": "zh", "谢谢": "zh",
}  # fmt: skip
_CODE = re.compile(r"[a-z]{2}")
_SHORT_CHARS = 40  # below this many characters, the full model is not trusted on its own
_CONFIDENT = 0.5


def language_code(value: str | None) -> str | None:
    """An ISO 639-1 code from a code ("en", "EN", "en-US") or an English name ("English");
    None when it is neither (FastChat's "unknown" included)."""
    if not value:
        return None
    text = value.strip().lower().replace("_", "-")
    if text in NAMES:
        return NAMES[text]
    head = text.split("-", 1)[0]
    if _CODE.fullmatch(head) and head in _iso_codes():
        return head
    return _MACRO.get(head)


@functools.cache
def _iso_codes() -> frozenset[str]:
    return frozenset(NAMES.values()) | {c for c in _identifier(False).labels if len(c) == 2}


@functools.cache
def _identifier(common: bool) -> Any:
    """py3langid's identifier (its model loads once, read-only), restricted for short texts."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if common:
        ident.set_languages(_COMMON)
    return ident


def _to_iso(label: str) -> str:
    code = _MACRO.get(label, label)
    return code if len(code) == 2 else UNKNOWN


def detect_language(text: str) -> str:
    """The ISO 639-1 code of a prompt's language, or "unknown"."""
    sample = text.strip()[:2000]
    if not any(c.isalpha() for c in sample):
        return UNKNOWN
    greeting = _GREETINGS.get(sample.lower().strip(" !?.,"))
    if greeting:
        return greeting
    label, confidence = _identifier(False).classify(sample)
    if len(sample) >= _SHORT_CHARS or confidence >= _CONFIDENT:
        return _to_iso(label)
    label, confidence = _identifier(True).classify(sample)  # short text: the common languages only
    return _to_iso(label) if confidence >= _CONFIDENT else UNKNOWN
