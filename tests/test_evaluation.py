import matplotlib
import numpy as np
import pytest

from lib import evaluation

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
