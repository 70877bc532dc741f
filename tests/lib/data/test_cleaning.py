import random

import pyarrow as pa
import pytest

from lib.data import cleaning

SAMPLES = [
    "Sunday would not be Sunday, I say!<br /><br />Life's a bitch (Billy Zane).",
    "A b c word a",
    "  x  ",
    "Café — naïve 10/10 résumé É",
    "don't   stop_me\tnow\u00a0ok\n\nthen",
    "<p>Hello</p>WORLD <i>it</i> 3 < 4 > 2",
    "",
]

# Characters and fragments where the fused passes could part from the steps: tags, a "<"
# or ">" that opens or closes nothing, runs of spaces, other whitespace (\v is no RE2 \s),
# non-ASCII spaces, combining marks, digits, capitals, letters alone and in pairs.
_AWKWARD = [*"ab é<>/ !'\t\n\u00a0\u2003.xY1-_", "<br />", "<i>", "</p>", "e\u0301", "\v", "  "]


def _random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(_AWKWARD, k=rng.randint(0, 30))) for _ in range(n)]


def _by_the_steps(texts: list[str]) -> list[str]:
    result = pa.array(texts, type=pa.large_string())
    for step in cleaning.STEPS:
        result = step(result)
    return result.to_pylist()


def _one(step, text):
    return step(pa.array([text], type=pa.large_string()))[0].as_py()


def test_lowercase():
    assert _one(cleaning.lowercase, "Hello ÉCOLE") == "hello école"


def test_remove_html_tags():
    assert _one(cleaning.remove_html_tags, "a<br />b<br/><i>c</i>") == "a b  c "


def test_remove_punctuation_keeps_letters_digits_and_accents():
    assert _one(cleaning.remove_punctuation, "don't, 10/10 (naïve)!") == "don t  10 10  naïve "


def test_drop_single_letters_keeps_digits_and_longer_words():
    assert _one(cleaning.drop_single_letters, "a b c word i 7 x an") == " word 7 an"
    assert _one(cleaning.drop_single_letters, "é ok") == " ok"


def test_collapse_whitespace():
    assert _one(cleaning.collapse_whitespace, "  a \t\n b  c ") == "a b c"


def test_clean_is_the_steps_in_order_and_idempotent():
    for text in SAMPLES:
        cleaned = cleaning.clean_text(text)
        assert cleaning.clean_text(cleaned) == cleaned
        assert cleaning.clean_steps(text)[-1] == ("collapse_whitespace", cleaned)
    assert cleaning.clean_text(SAMPLES[0]) == "sunday would not be sunday say life bitch billy zane"
    assert cleaning.clean_text(SAMPLES[4]) == "don stop me now ok then"


def test_clean_equals_the_steps_on_random_awkward_text():
    texts = _random_texts(50_000) + SAMPLES
    cleaned = cleaning.clean(texts).to_pylist()
    mismatches = [
        (t, a, b) for t, a, b in zip(texts, _by_the_steps(texts), cleaned, strict=True) if a != b
    ]
    assert mismatches == []
    assert sum(bool(c) for c in cleaned) > 25_000  # the texts are not all cleaned away


@pytest.mark.slow
def test_tensorflow_engine_cleans_exactly_like_arrow():
    tf = pytest.importorskip("tensorflow")
    texts = SAMPLES + _random_texts(5_000, seed=1)
    out = cleaning.tf_clean(tf.constant(texts)).numpy()
    assert [x.decode() for x in out] == _by_the_steps(texts)
