import pyarrow as pa
import pytest

from lib import cleaning

SAMPLES = [
    "Sunday would not be Sunday, I say!<br /><br />Life's a bitch (Billy Zane).",
    "A b c word a",
    "  x  ",
    "Café — naïve 10/10 résumé É",
    "don't   stop_me\tnow\u00a0ok\n\nthen",
    "<p>Hello</p>WORLD <i>it</i> 3 < 4 > 2",
    "",
]


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


def test_clean_parallel_equals_clean():
    texts = pa.array(SAMPLES * 700, type=pa.large_string())
    assert (
        cleaning.clean_parallel(texts, threads=2).to_pylist() == cleaning.clean(texts).to_pylist()
    )


@pytest.mark.slow
def test_tensorflow_engine_cleans_exactly_like_arrow():
    tf = pytest.importorskip("tensorflow")
    out = cleaning.tf_clean(tf.constant(SAMPLES)).numpy()
    assert [x.decode() for x in out] == [cleaning.clean_text(s) for s in SAMPLES]
