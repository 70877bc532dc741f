import numpy as np
import pyarrow as pa

from lib.data import arrow_buffers
from tests.support.datagen import make_raw_dir
from tests.support.runner_process import run_python


def test_from_numpy_matches_pa_array_for_each_width():
    for dtype in (np.int8, np.int32, np.int64, np.float32):
        values = np.array([3, -1, 0, 7], dtype=dtype)
        assert arrow_buffers.from_numpy(values).equals(pa.array(values))
    every_other = np.arange(10, dtype=np.int64)[::2]  # not contiguous
    assert arrow_buffers.from_numpy(every_other).to_pylist() == [0, 2, 4, 6, 8]


def test_mask_filters_like_a_boolean_array():
    keep = np.array([True, False, True, True, False, False, True, False, True, True, False])
    table = pa.table({"x": list(range(len(keep)))})
    assert table.filter(arrow_buffers.mask(keep))["x"].to_pylist() == [0, 2, 3, 6, 8, 9]


def test_strings_and_large_strings_round_trip():
    words = ["", "café", "a b", "\u2003", "z" * 300]
    assert arrow_buffers.strings(words).to_pylist() == words
    assert arrow_buffers.strings(words).type == pa.string()
    large = arrow_buffers.large_strings([w.encode() for w in words])
    assert large.type == pa.large_string() and large.to_pylist() == words


def test_byte_lengths_of_a_slice():
    texts = arrow_buffers.large_strings([b"", b"ab", "\u00e9".encode(), b"xyz"])
    assert arrow_buffers.byte_lengths(texts).tolist() == [0, 2, 2, 3]
    assert arrow_buffers.byte_lengths(texts.slice(1, 2)).tolist() == [2, 2]


def test_prepare_never_imports_pandas(tmp_path):
    src = make_raw_dir(tmp_path / "raw", per_label=3)
    out = run_python(
        f"""
        import sys
        from lib.data import prep
        prep.prepare([{str(src)!r}], {str(tmp_path / "out")!r})
        assert prep.is_processed_dir({str(tmp_path / "out")!r})
        print("pandas imported:", "pandas" in sys.modules)
        """
    )
    assert out == "pandas imported: False"
