"""Keyword and language tagging in plain Python (no component bindings), so
it runs natively under `python3 -m unittest` as well as inside the component.

Keywords are the most frequent content words of a text (stop words, numbers
and masked placeholders such as ``[EMAIL]`` are skipped; ties go to the word
seen first). The language is the one whose stop words cover the most tokens;
a text with too few stop-word hits is ``und`` (undetermined, as in BCP 47).
"""

import json
import re

STOP_WORDS = {
    "en": set("""a about after all also an and any are as at be because been but by can could did do does
        for from had has have he her his how i if in into is it its more most my no not of on one or other our
        out over she so some such than that the their them then there these they this those to two up was we
        were what when where which while who will with would you your""".split()),
    "de": set("""aber alle als am an auch auf aus bei bis das dass dem den der des die doch ein eine einem
        einen einer es für hat haben ich ihr im in ist mit nach nicht noch nur oder sich sie sind so über um
        und uns von vor war wie wir wird zu zum zur""".split()),
    "fr": set("""au aux avec ce ces dans de des du elle en est et il ils je la le les leur lui mais me
        même mes ne nous on ou par pas pour qu que qui sa se ses son sont sur ta te tes toi ton tu un une
        vos votre vous""".split()),
    "es": set("""al como con de del el ella en entre es esta este fue ha la las le les lo los más mi no
        nos o para pero por que se sin sobre su sus también un una uno y ya""".split()),
    "nl": set("""aan al bij dat de den der die dit een en er het hij ik in is je maar met naar niet nog
        of om ons ook op over te tot uit van voor was wat we wij worden zij zijn""".split()),
}
ALL_STOP_WORDS = set().union(*STOP_WORDS.values())
WORD = re.compile(r"\[[A-Z_]+\]|[^\W\d_]+(?:['’-][^\W\d_]+)*")
MIN_STOP_WORD_HITS = 2


class ConfigError(ValueError):
    """The step's `config` is not what this step accepts."""


class Config:
    """The step's settings: `top` keywords per item, words of at least `min_length` letters."""

    def __init__(self, top=5, min_length=3):
        self.top = top
        self.min_length = min_length

    @staticmethod
    def from_json(text):
        try:
            raw = json.loads(text or "{}")
        except ValueError as error:
            raise ConfigError(f"config is not valid JSON: {error}") from None
        if not isinstance(raw, dict):
            raise ConfigError("config must be a JSON object")
        unknown = sorted(set(raw) - {"top", "min_length"})
        if unknown:
            raise ConfigError(f"unknown config field `{unknown[0]}` (expected `top` or `min_length`)")
        config = Config()
        for field, low, high in (("top", 1, 50), ("min_length", 1, 30)):
            if field in raw:
                value = raw[field]
                if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                    raise ConfigError(f"`{field}` must be a whole number from {low} to {high}, got {value!r}")
                setattr(config, field, value)
        return config


def tokens(text):
    """Lower-cased words of `text`, without masked placeholders."""
    return [w.lower() for w in WORD.findall(text) if not w.startswith("[")]


def language(words):
    """The ISO 639-1 code of the language whose stop words `words` use most, or `und`."""
    best, best_hits = "und", 0
    for code, stop_words in STOP_WORDS.items():
        hits = sum(1 for w in words if w in stop_words)
        if hits > best_hits:
            best, best_hits = code, hits
    return best if best_hits >= MIN_STOP_WORD_HITS else "und"


def keywords(words, config):
    """The `config.top` most frequent content words, most frequent first."""
    counts = {}
    for word in words:
        if len(word) >= config.min_length and word not in ALL_STOP_WORDS:
            counts[word] = counts.get(word, 0) + 1
    # dicts keep insertion order and sorted() is stable: ties go to the first seen.
    ranked = sorted(counts.items(), key=lambda pair: -pair[1])
    return [word for word, _ in ranked[: config.top]]


def tag(text, config):
    """The metadata this step adds to one text item, as (key, value) pairs."""
    words = tokens(text)
    return [
        ("keywords", ",".join(keywords(words, config))),
        ("language", language(words)),
        ("word_count", str(len(words))),
    ]
