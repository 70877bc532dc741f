"""polyaxonfiles/serve-model.yml and docker/model-serving.Dockerfile, without an engine.

The service component is checked, parsed and rendered by Polyaxon's own code
(tests/support/polyaxon_render.py), as tests/system/polyaxon/test_parse.py does for the jobs:
strict params,
every template name declared or a context Polyaxon gives a service, the pod that Polyaxon's
converter makes (restricted profile, tini, port 5000, the readiness probe), the proxy path
that rewritePath strips, and the rendered command run by bash with a stand-in ``python`` that
records how it was called (``python -m runner serve``). The serving image's Dockerfile holds
only the scoring pins, each the version the project pins, and the project's lib and runner.
The image itself is built and run in tests/system/test_serving_container.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from polyaxon.exceptions import PolyaxonfileError

from tests.support import polyaxon_render as plx
from tests.support.dockerfiles import instructions
from tests.support.images import requirement_pins

ROOT = plx.ROOT
FILE = plx.POLYAXONFILES / "serve-model.yml"
DOCKERFILE = ROOT / "docker" / "model-serving.Dockerfile"
SHELL = [*plx.INIT, "/bin/bash", "-c"]
NASTY = 'it\'s a "test" $HOME `id` \\ * ; {x}'
INPUTS = {
    "MODEL_URI",
    "DOCKER_IMAGE",
    "WORKERS",
    "SA_CRED_PATH",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
}
# A serving pin and the project pin it must equal (mlflow-skinny is mlflow less the server,
# tensorflow-cpu is tensorflow without the GPU libraries).
SAME_AS = {"mlflow-skinny": "mlflow", "tensorflow-cpu": "tensorflow"}


def _render(params: dict[str, Any] | None = None, run_uuid: str | None = None) -> plx.RenderedJob:
    return plx.render_job(FILE, params, run_uuid)


# --------------------------------------------------------------------------- the component


def test_the_service_declares_its_inputs_each_described_with_a_default():
    data = plx.read_yaml(FILE)
    assert data["version"] == 1.1 and data["kind"] == "component"
    assert plx.file_kind(FILE) == "service"
    assert plx.declared_names(data) == INPUTS
    for io in data["inputs"]:
        assert io.get("description"), f"input {io['name']} has no description"
        assert io.get("isOptional") and "value" in io, f"{io['name']} needs a default"
    defaults = {io["name"]: io["value"] for io in data["inputs"]}
    assert defaults["MODEL_URI"] == "models:/imdb-sentiment@champion"
    assert "docker/model-serving.Dockerfile" in data["inputs"][1]["description"]
    # Every input is used by the run section.
    used = {r.name for r in plx.template_refs(data["run"])}
    assert plx.declared_names(data) - used == set()


def test_the_service_exposes_port_5000_behind_the_rewriting_proxy():
    job = _render(run_uuid="a" * 32)
    run = job.compiled.run
    assert run.kind == "service" and run.ports == [5000] and run.rewrite_path is True
    assert not run.is_external  # behind Polyaxon's own auth
    # The proxy's prefix, which rewritePath strips before the request reaches the server.
    base = "/rewrite-services/v1/polyaxon/aisg/imdb-sentiment/runs/" + "a" * 32 + "/5000"
    assert job.contexts["globals"]["base_url"] == base
    main = job.main_container()
    assert main["ports"] == [{"containerPort": 5000}]
    assert main["readinessProbe"]["httpGet"] == {"path": "/ping", "port": 5000}
    assert job.image == "registry.example.com/imdb-sentiment/model-serving:0.1.0"


def test_every_template_name_is_declared_or_a_service_context():
    data = plx.read_yaml(FILE)
    top_level, globals_keys = plx.context_names(_render())
    assert "base_url" in globals_keys  # a service's context, which a job's lacks
    known = plx.declared_names(data) | top_level
    unknown = [
        f"{ref.where}: {ref.name}"
        for ref in plx.template_refs(data)
        if not (
            ref.name.split(".", 1)[1] in globals_keys
            if ref.name.startswith("globals.")
            else ref.name in known
        )
    ]
    assert not unknown


def test_an_undeclared_or_wrongly_typed_param_is_rejected():
    with pytest.raises(PolyaxonfileError) as info:
        plx.check(FILE, {"MODEL_URL": "models:/x@champion"})
    assert "MODEL_URL" in str(info.value.__cause__)
    with pytest.raises(PolyaxonfileError) as info:
        plx.check(FILE, {"WORKERS": "many"})
    cause = str(info.value.__cause__)
    assert "`many`" in cause and "`WORKERS`" in cause and "`int`" in cause


def test_the_pod_runs_under_the_restricted_profile_with_tini_as_pid_1():
    job = _render()
    pod = job.pod()
    main = job.main_container(pod)
    assert pod["securityContext"] == {"runAsUser": 2222, "runAsGroup": 2222, "runAsNonRoot": True}
    assert main["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert main["command"] == SHELL and main["args"] == [job.script]
    (tmp,) = [m for m in main["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert volume["emptyDir"] == {} and not tmp.get("readOnly")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in job.env}
    secret = {"name": "mlflow-credentials", "optional": True}
    assert refs == {
        "MLFLOW_TRACKING_USERNAME": {**secret, "key": "username"},
        "MLFLOW_TRACKING_PASSWORD": {**secret, "key": "password"},
    }


# --------------------------------------------------------------------------- the command


def _stub_python(tmp_path: Path) -> Path:
    """A ``python`` that records its argv and environment instead of serving."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "python"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['SERVE_STUB_RECORD'], 'w') as f:\n"
        "    json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, f)\n",
        encoding="utf-8",
    )
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _run(job: plx.RenderedJob, tmp_path: Path, secrets=None) -> subprocess.CompletedProcess:
    record = tmp_path / f"call-{job.run_uuid}.json"
    path = f"{_stub_python(tmp_path)}{os.pathsep}{os.environ['PATH']}"
    base = plx.process_base_env(PATH=path, SERVE_STUB_RECORD=str(record))
    env = job.process_env(base, secrets)
    return subprocess.run(job.shell_argv, env=env, capture_output=True, text=True, timeout=60)


def _call(job: plx.RenderedJob, tmp_path: Path, secrets=None) -> dict[str, Any]:
    done = _run(job, tmp_path, secrets)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / f"call-{job.run_uuid}.json").read_text(encoding="utf-8"))


def test_the_command_serves_the_model_uri_exactly_with_credentials_in_the_env(tmp_path):
    key = tmp_path / "sa key.json"
    key.write_text("{}", encoding="utf-8")
    model = f"models:/imdb {NASTY}@champion"
    job = _render(
        {
            "MODEL_URI": model,
            "WORKERS": 2,
            "SA_CRED_PATH": str(key),
            "MLFLOW_TRACKING_URI": "http://mlflow.internal:5005",
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": f"pa$$ {NASTY}",
        }
    )
    call = _call(job, tmp_path)
    assert call["argv"] == [
        *("-m", "runner", "serve", "--model", model),
        *("--host", "0.0.0.0", "--port", "5000", "--workers", "2"),
    ]
    env = call["env"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5005"
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == (
        "alice",
        f"pa$$ {NASTY}",
    )
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == str(key)
    assert not {"model", "uri", "user", "password"} & set(env)
    # The password is in the environment only, never on the server's command line.
    assert "pa$$" not in " ".join(call["argv"])


def test_credentials_come_from_the_secret_and_a_plain_input_overrides_it(tmp_path):
    secrets = {("mlflow-credentials", "username"): "svc", ("mlflow-credentials", "password"): "s3"}
    job = _render({"MLFLOW_TRACKING_URI": "http://mlflow:5005"})
    env = _call(job, tmp_path, secrets)["env"]
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("svc", "s3")
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env  # the optional key file is absent
    job = _render({"MLFLOW_TRACKING_URI": "http://mlflow:5005", "MLFLOW_TRACKING_USERNAME": "bob"})
    env = _call(job, tmp_path, secrets)["env"]
    assert (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]) == ("bob", "s3")


@pytest.mark.parametrize("model", ["models:/imdb-sentiment@champion", "runs:/0123abcd/model"])
def test_a_registry_uri_without_a_tracking_server_fails_in_one_line(model, tmp_path):
    done = _run(_render({"MODEL_URI": model}), tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"MODEL_URI {model}" in done.stderr and "-P MLFLOW_TRACKING_URI=" in done.stderr


def test_an_artifact_path_is_served_without_a_tracking_server(tmp_path):
    call = _call(_render({"MODEL_URI": "gs://bucket/models/model"}), tmp_path)
    assert call["argv"][3:5] == ["--model", "gs://bucket/models/model"]
    assert "MLFLOW_TRACKING_URI" not in call["env"]


# --------------------------------------------------------------------------- the image


def test_the_serving_image_holds_only_the_scoring_pins_each_the_projects_version():
    steps = instructions(DOCKERFILE)
    copies = [args for keyword, args in steps if keyword in {"COPY", "ADD"}]
    # The scoring pins, and the code of `python -m runner serve`: no notebooks, no conf.
    assert copies == [
        "requirements-build.lock requirements-serve.lock ./",
        "lib /opt/imdb/lib",
        "runner /opt/imdb/runner",
    ]
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "--require-hashes -r requirements-serve.lock" in runs
    assert "requirements.txt" not in runs and "-e ." not in runs
    serve = requirement_pins("requirements-serve.txt")
    project = requirement_pins("requirements-prep.txt") | requirement_pins("requirements-train.txt")
    for name, line in serve.items():
        pin = project[SAME_AS.get(name, name)]
        assert line.split("==")[1] == pin.split("==")[1], (line, pin)
    # Not what training or the notebooks need.
    assert not serve.keys() & {"mlflow", "tensorflow", "jupyterlab", "optuna", "papermill"}


def test_the_serving_image_runs_as_the_pods_user_under_tini_on_port_5000():
    steps = instructions(DOCKERFILE)
    assert [json.loads(a) for k, a in steps if k == "ENTRYPOINT"] == [["/usr/bin/tini", "-g", "--"]]
    assert [a for k, a in steps if k == "USER"] == ["2222:2222"]
    assert [a for k, a in steps if k == "EXPOSE"] == ["5000"]
    (cmd,) = [json.loads(a) for k, a in steps if k == "CMD"]
    assert cmd[:4] == ["python", "-m", "runner", "serve"]
    env = " ".join(a for k, a in steps if k == "ENV")
    for var in ("HOME=/home/aisg", "XDG_CACHE_HOME=/tmp/", "KERAS_HOME=/tmp/", "TMPDIR=/tmp"):
        assert var in env
    # The component's container is the image's: the same user, its server on the port.
    job = _render()
    assert job.security_context["runAsUser"] == 2222 and job.security_context["runAsGroup"] == 2222
    components = yaml.safe_load(FILE.read_text(encoding="utf-8"))
    assert components["run"]["ports"] == [5000]
