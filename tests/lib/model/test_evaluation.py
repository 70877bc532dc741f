import matplotlib
import numpy as np
import pytest

from lib.core.errors import OutputError
from lib.model import evaluation

matplotlib.use("Agg")


def test_binary_metrics_match_hand_computation():
    labels = np.array([1, 0, 1, 0])
    probs = np.array([0.9, 0.2, 0.4, 0.6])
    m = evaluation.binary_metrics(labels, probs, "auc")
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.4, 0.4]))
    assert m["loss"] == pytest.approx(expected_loss)
    assert m["accuracy"] == 0.5
    assert m["auc"] == pytest.approx(0.75)  # 3 of 4 (pos, neg) pairs ordered right
    assert evaluation.binary_metrics(labels, probs, "precision")["precision"] == 0.5
    assert evaluation.binary_metrics(labels, probs, "recall")["recall"] == 0.5


def test_auc_counts_a_tie_as_one_half_whatever_the_order():
    # Every positive ties a negative: AUC 0.5, as sklearn's, in either order of the rows.
    probs = np.array([0.3, 0.3, 0.7, 0.7])
    assert evaluation.binary_metrics(np.array([0, 1, 0, 1]), probs, "auc")["auc"] == 0.5
    assert evaluation.binary_metrics(np.array([1, 0, 1, 0]), probs, "auc")["auc"] == 0.5
    labels = np.array([1, 0, 1, 0, 1])
    probs = np.array([0.9, 0.9, 0.4, 0.4, 0.1])  # pairs: 0.5 + 1 + 0 + 0.5 + 0 + 0 over 6
    assert evaluation.binary_metrics(labels, probs, "auc")["auc"] == pytest.approx(2 / 6)


def test_split_metrics_are_each_splits_metrics_prefixed_with_its_name():
    val = (np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6]))
    test = (np.array([1, 0]), np.array([0.8, 0.1]))
    flat = evaluation.split_metrics({"val": val, "test": test}, "auc")
    assert list(flat) == [
        "val_loss",
        "val_accuracy",
        "val_auc",
        "test_loss",
        "test_accuracy",
        "test_auc",
    ]
    for split, (labels, probs) in (("val", val), ("test", test)):
        for name, value in evaluation.binary_metrics(labels, probs, "auc").items():
            assert flat[f"{split}_{name}"] == value
    assert flat["val_accuracy"] == 0.5 and flat["test_accuracy"] == 1.0


def test_confusion_matrix_rows_are_true_labels():
    m = evaluation.confusion_matrix(np.array([1, 1, 0, 0, 0]), np.array([0.8, 0.3, 0.1, 0.7, 0.2]))
    assert m.tolist() == [[2, 1], [1, 1]]


def test_figures_are_written(tmp_path):
    history = {
        "loss": [0.6, 0.4],
        "val_loss": [0.5, 0.45],
        "accuracy": [0.7, 0.8],
        "val_accuracy": [0.75, 0.78],
    }
    curves = evaluation.save_figure(evaluation.plot_learning_curves(history), tmp_path / "c.png")
    matrix = evaluation.plot_confusion_matrix(np.array([[40, 10], [5, 45]]))
    cm = evaluation.save_figure(matrix, tmp_path / "sub" / "cm.png")
    for path in (curves, cm):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.parametrize("fault", ["read_only_dir", "full_dir"])
def test_a_read_only_or_full_model_dir_is_one_line_naming_it(request, fault):
    folder = request.getfixturevalue(fault) / "model"
    matrix = evaluation.plot_confusion_matrix(np.array([[40, 10], [5, 45]]))
    with pytest.raises(OutputError) as info:
        evaluation.save_figure(matrix, folder / "cm.png")
    assert str(info.value).startswith(f"output folder {folder} cannot be written: ")
    assert ("read-only" if fault == "read_only_dir" else "no space") in str(info.value)


def test_the_alternative_texts_say_what_the_figures_show():
    history = {"loss": [0.6, 0.4], "val_loss": [0.5, 0.45], "auc": [0.7, 0.8]}
    assert evaluation.describe_learning_curves(history, "auc") == (
        "Learning curves over 2 epoch(s): loss (train from 0.600 to 0.400, validation from "
        "0.500 to 0.450) and auc (train from 0.700 to 0.800)."
    )
    assert evaluation.describe_confusion_matrix(np.array([[40, 10], [5, 45]])) == (
        "Test confusion matrix: of 50 negative reviews, 40 (80.0%) predicted negative, "
        "10 (20.0%) predicted positive; of 50 positive reviews, 5 (10.0%) predicted "
        "negative, 45 (90.0%) predicted positive."
    )


def test_a_figure_is_shown_as_an_image_with_its_alternative_text_and_closed():
    import base64
    import html.parser

    import matplotlib.pyplot as plt

    figure = evaluation.plot_confusion_matrix(np.array([[40, 10], [5, 45]]))
    shown = evaluation.figure_output(figure, 'Counts: "40" & <45>')
    assert figure.number not in plt.get_fignums()  # the inline backend will not show it again
    bundle = shown._repr_mimebundle_()
    assert bundle["text/plain"] == 'Counts: "40" & <45>'

    class Images(html.parser.HTMLParser):
        found: list[dict[str, str | None]] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.found.append(dict(attrs))

    parser = Images()
    parser.feed(bundle["text/html"])
    [img] = parser.found
    assert img["alt"] == 'Counts: "40" & <45>'
    png = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"))
    assert png == shown.png and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_nbconvert_finds_no_image_without_alternative_text(caplog):
    import nbformat
    from nbconvert import HTMLExporter

    figure = evaluation.plot_learning_curves({"loss": [0.6, 0.4], "accuracy": [0.7, 0.8]})
    data = evaluation.figure_output(figure, "curves")._repr_mimebundle_()
    output = nbformat.v4.new_output("display_data", data)
    cell = nbformat.v4.new_code_cell("figure", outputs=[output])
    with caplog.at_level("WARNING"):
        body, _ = HTMLExporter(template_name="lab").from_notebook_node(
            nbformat.v4.new_notebook(cells=[cell])
        )
    assert body.count("<img") == 1 and 'alt="curves"' in body
    assert not [r for r in caplog.records if "Alternative text" in r.getMessage()]
