"""polyaxonfiles/review-page.yml read by Polyaxon's own parser, compiler and resolver: a
service on port 8501 serving the page under the path Polyaxon gives it (no rewritePath), ready
on ``<base>/_stcore/health``, the restricted pod profile, the credentials from the secret; run
in its image by tests/system/test_page_container.py."""

from __future__ import annotations

import subprocess

from tests.support import polyaxon_render as plx

FILE = plx.POLYAXONFILES / "review-page.yml"
INPUTS = {
    "MODEL_URI",
    "DOCKER_IMAGE",
    "SA_CRED_PATH",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
}


def test_the_component_declares_its_inputs_with_defaults_and_uses_them():
    data = plx.read_yaml(FILE)
    assert plx.file_kind(FILE) == "service" and plx.declared_names(data) == INPUTS
    defaults = {io["name"]: io["value"] for io in data["inputs"]}
    assert defaults["MODEL_URI"] == "models:/imdb-sentiment@champion"
    assert "docker/model-training-cpu.Dockerfile" in data["inputs"][1]["description"]
    used = {r.name for r in plx.template_refs(data["run"])}
    assert plx.declared_names(data) - used == set()
    _, globals_keys = plx.context_names(plx.render_job(FILE))
    unknown = [
        ref.name
        for ref in plx.template_refs(data)
        if ref.name.startswith("globals.") and ref.name.split(".", 1)[1] not in globals_keys
    ]
    assert unknown == []


def test_the_review_page_service_is_polyaxons_with_its_base_path():
    job = plx.render_job(FILE, {"MODEL_URI": "models:/imdb-sentiment/2"}, run_uuid="b" * 32)
    base = job.contexts["globals"]["base_url"]
    assert base.startswith("/") and job.run_uuid in base
    assert list(job.compiled.run.ports) == [8501] and not job.compiled.run.rewrite_path
    script = job.argv[-1]
    assert f"--base-url-path '{base}'" in script and "python -m runner app" in script
    assert "model='models:/imdb-sentiment/2'" in script
    probe = job.main_container(job.pod())["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == (f"{base}/_stcore/health", 8501)
    assert job.security_context["runAsNonRoot"] is True
    assert job.container_security_context["readOnlyRootFilesystem"] is True
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in job.env if "valueFrom" in e
    }
    assert secret_env == {
        "MLFLOW_TRACKING_USERNAME": "mlflow-credentials",
        "MLFLOW_TRACKING_PASSWORD": "mlflow-credentials",
    }


def test_the_rendered_script_starts_the_page_with_the_secret_free_argv(tmp_path):
    job = plx.render_job(FILE, {"MODEL_URI": "it's.keras", "MLFLOW_TRACKING_PASSWORD": "pw"})
    script = job.argv[-1].replace("exec python", "exec echo python")
    script = script.replace('mkdir -p "$HOME"', ":").replace("/home/aisg/project", str(tmp_path))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    words = done.stdout.split()
    assert words[:4] == ["python", "-m", "runner", "app"]
    assert words[words.index("--model") + 1] == "it's.keras"
    base = job.contexts["globals"]["base_url"]
    assert words[words.index("--base-url-path") + 1] == base
    assert "pw" not in done.stdout
