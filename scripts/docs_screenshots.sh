#!/usr/bin/env bash
# Re-take the docs' screenshots (docs/images/) with the tests that make them: JupyterLab with
# the train notebook run (tests/system/test_jupyterlab.py, prep first: train reads its data)
# the MLflow run page with its logged notebook (tests/system/test_mlflow_ui.py) and the review
# page with a review explained (tests/app/test_page.py); then copy
# them from test-artifacts/, cut and shrunk (1000 px wide, 256 colours) to stay small in git.
# Usage: scripts/docs_screenshots.sh   (about 2 min; needs chromium: scripts/system_packages.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
jupyterlab=tests/system/test_jupyterlab.py::test_the_notebook_runs_all_in_jupyterlab_and_shows_its_results
$py -m pytest -q -p no:cacheprovider "$jupyterlab[prep]" "$jupyterlab[train]" \
  tests/system/test_mlflow_ui.py "tests/app/test_page.py::test_a_clear_review_gets_its_label_and_its_words_marked"
# Each picture is bands of its screenshot (x0, y0, x1, y1; y <= 0 counts from the bottom),
# stacked. JupyterLab: its menu and tab bar, the train notebook's Train and Evaluate sections
# (the learning curves and the confusion matrix), its status bar; MLflow: the run page, left
# of the assistant panel. The bands follow the notebook's layout: look at the pictures after
# changing the train notebook.
$py - <<'PYTHON'
from PIL import Image

SHOTS = {
    "docs/images/jupyterlab-train.png": (
        "test-artifacts/jupyterlab/train.png",
        [(0, 0, 1280, 96), (0, 2600, 1280, 4940), (0, -26, 1280, 0)],
    ),
    "docs/images/mlflow-run-page.png": ("test-artifacts/mlflow/run-page.png", [(0, 0, 944, 900)]),
    # The review page with a positive review explained: the side panel, the form, the marks.
    "docs/images/review-page.png": ("test-artifacts/page/positive.png", [(0, 0, 1280, 900)]),
}
WIDTH = 1000
for target, (source, bands) in SHOTS.items():
    with Image.open(source) as shot:
        shot = shot.convert("RGB")
    height = shot.height
    parts = [
        shot.crop((x0, y0 % height, x1, y1 % height or height)) for x0, y0, x1, y1 in bands
    ]
    picture = Image.new("RGB", (parts[0].width, sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        picture.paste(part, (0, y))
        y += part.height
    picture = picture.resize((WIDTH, round(picture.height * WIDTH / picture.width)), Image.LANCZOS)
    picture.quantize(256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"{target}: {picture.width}x{picture.height}")
PYTHON
ls -l docs/images/jupyterlab-train.png docs/images/mlflow-run-page.png docs/images/review-page.png
