"""Check and render the polyaxonfiles with Polyaxon's own parser and compiler.

Polyaxon turns a polyaxonfile into a container in four steps, all reproduced here with its
own code (``polyaxon`` package, test requirement only):

1. ``check_polyaxonfile`` reads the file (and the ``pathRef`` files it names), applies the
   ``-P`` params and validates them (``strict_params``: an undeclared param is an error);
2. ``OperationSpecification.compile_operation_with_params`` composes the compiled operation;
3. the agent-side resolver (``polyaxon._compiler.resolver.resolve``) applies the params and
   the ``globals`` context, checks the connections against the agent's catalog and renders
   the ``{{ }}`` templates of the run section, as the agent does before creating the pod;
4. the container's ``command + args`` is the argv the pod runs (tini, the init, first: a
   command replaces the image's ENTRYPOINT); its ``env`` entries are plain values or
   Kubernetes secret references.

A DAG (pipeline.yml) is rendered op by op in topological order, each op's ``ref: dag`` and
``ref: ops.NAME`` params replaced by the pipeline's and the upstream ops' input values (what
Polyaxon's scheduler does when it starts each op). A ``matrix`` operation is rendered once per
suggestion (``get_ops_from_suggestions``, as the tuner does for a ``mapping``).
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2 import meta, nodes
from polyaxon._compiler.resolver import BaseResolver, resolve
from polyaxon._flow.params.params import V1Param
from polyaxon._polyaxonfile import (
    CompiledOperationSpecification,
    OperationSpecification,
    check_polyaxonfile,
    get_ops_from_suggestions,
)
from polyaxon._polyaxonfile.specs.libs.engine import get_engine
from polyaxon._schemas.agent import AgentConfig

ROOT = Path(__file__).resolve().parents[2]
POLYAXONFILES = ROOT / "polyaxonfiles"

# The agent side: a namespace, an artifacts store and the connections catalog. A connection
# that a polyaxonfile names and this catalog lacks fails the resolution, as on a cluster.
AGENT_CONFIG = {
    "namespace": "polyaxon",
    "artifactsStore": {
        "name": "artifacts-store",
        "kind": "host_path",
        "schema": {"hostPath": "/tmp/plx-artifacts", "mountPath": "/plx-context/artifacts"},
    },
    "connections": [
        {
            "name": "fstore-pvc",
            "kind": "volume_claim",
            "schema": {"mountPath": "/polyaxon-v1-data", "volumeClaim": "fstore-rwx-pvc"},
        }
    ],
}


class _Resolver(BaseResolver):
    """Polyaxon's resolver with the agent configuration above."""

    def resolve_agent(self):
        self.agent_config = AgentConfig.read(copy.deepcopy(AGENT_CONFIG))


# The init every component's command starts with: PID 1 forwards signals and reaps orphans.
INIT = ["/usr/bin/tini", "-g", "--"]


@dataclass
class RenderedJob:
    """One resolved job: what the agent hands to Kubernetes for the main container."""

    name: str
    run_uuid: str
    argv: list[str]
    image: str
    working_dir: str | None
    env: list[dict[str, Any]]  # Kubernetes EnvVar dicts: value or valueFrom.secretKeyRef
    resources: dict[str, Any]
    tolerations: list[dict[str, Any]]
    inputs: dict[str, Any]  # the param values the job was resolved with
    contexts: dict[str, Any]  # the runtime context the templates were rendered in
    compiled: Any = field(repr=False)
    security_context: dict[str, Any] = field(default_factory=dict)  # the pod's (runAsUser ...)
    # The container's own (readOnlyRootFilesystem ...), the pod's volumes and their mounts.
    container_security_context: dict[str, Any] = field(default_factory=dict)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def script(self) -> str:
        """The bash script the container runs (the last argument of ``bash -c``)."""
        return self.argv[-1]

    @property
    def shell_argv(self) -> list[str]:
        """The argv less the init (tini, which the images hold): how a test runs the pod's
        command on this machine, where tini need not be installed."""
        if self.argv[: len(INIT)] != INIT:
            raise AssertionError(f"{self.name}: the command does not start with {INIT}")
        return self.argv[len(INIT) :]

    def process_env(
        self, base: Mapping[str, str], secrets: Mapping[tuple[str, str], str] | None = None
    ) -> dict[str, str]:
        """``base`` plus the container's env, as the kubelet sets it.

        ``secrets`` maps (secret name, key) to a value; an optional secret key that is not
        there leaves its variable unset, a required one is an error (the pod would not start).
        """
        env = dict(base)
        for entry in self.env:
            name = entry["name"]
            if entry.get("value") is not None:
                env[name] = str(entry["value"])
                continue
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if not ref:
                raise AssertionError(f"env {name}: neither a value nor a secretKeyRef: {entry}")
            key = (ref["name"], ref["key"])
            if secrets and key in secrets:
                env[name] = secrets[key]
            elif not ref.get("optional"):
                raise AssertionError(f"env {name}: required secret {key} is missing")
            else:
                env.pop(name, None)
        return env

    def pod(self) -> dict[str, Any]:
        """The Kubernetes pod spec the agent creates for this job (Polyaxon's own converter:
        its init and sidecar containers, the artifacts and connection volumes added)."""
        from polyaxon import settings
        from polyaxon._k8s.executor.executor import Executor

        agent = AgentConfig.read(copy.deepcopy(AGENT_CONFIG))
        saved, settings.AGENT_CONFIG = settings.AGENT_CONFIG, agent  # read by the converter
        try:
            resource = Executor.convert(
                owner_name="aisg",
                project_name="imdb-sentiment",
                run_name=self.name,
                run_uuid=self.run_uuid,
                content=self.compiled.to_json(),
                default_auth=False,
                agent_content=json.dumps(AGENT_CONFIG),
            )
        finally:
            settings.AGENT_CONFIG = saved
        # A job is a batch job, a service (serve-model.yml) a deployment with a service.
        spec = resource.get("batchJobSpec") or resource["serviceSpec"]
        return spec["template"]["spec"]

    def main_container(self, pod: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The pod's main container (the one that runs the command)."""
        pod = pod or self.pod()
        (main,) = [c for c in pod["containers"] if c["name"] == MAIN_CONTAINER]
        return main


# The name Polyaxon's converter gives the container that runs the component's command.
MAIN_CONTAINER = "polyaxon-main"


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def check(path: Path, params: Mapping[str, Any] | None = None, strict_params: bool = True) -> Any:
    """``polyaxon check -f PATH -P k=v... --strict-params``: the validated operation."""
    return check_polyaxonfile(
        polyaxonfile=str(path),
        params=dict(params) if params else None,
        is_cli=False,
        to_op=True,
        strict_params=strict_params,
    )


def _resolve_operation(op: Any, name: str, run_uuid: str | None = None) -> RenderedJob:
    compiled, params = OperationSpecification.compile_operation_with_params(op)
    run_uuid = run_uuid or uuid.uuid4().hex
    resolver, resolved = resolve(
        owner_name="aisg",
        project_name="imdb-sentiment",
        project_uuid=uuid.uuid5(uuid.NAMESPACE_DNS, "imdb-sentiment").hex,
        run_name=name,
        run_uuid=run_uuid,
        run_path=run_uuid,
        compiled_operation=compiled,
        params=params,
        resolver_cls=_Resolver,
    )
    inputs = {k: spec.param.value for k, spec in resolver.param_spec.items() if not spec.is_context}
    if resolved.is_dag_run:
        return RenderedJob(name, run_uuid, [], "", None, [], {}, [], inputs, {}, resolved)
    contexts = resolver._resolve_contexts()
    container = resolved.run.container
    environment = resolved.run.environment
    return RenderedJob(
        name=name,
        run_uuid=run_uuid,
        argv=[*(container.command or []), *(container.args or [])],
        image=container.image,
        working_dir=container.working_dir,
        env=[_to_dict(e) for e in (container.env or [])],
        resources=_to_dict(container.resources) or {},
        tolerations=[_to_dict(t) for t in (environment.tolerations or [])] if environment else [],
        inputs=inputs,
        contexts=contexts,
        compiled=resolved,
        security_context=_to_dict(environment.security_context) if environment else {},
        container_security_context=_to_dict(container.security_context) or {},
        volumes=_to_dict(resolved.run.volumes) or [],
        volume_mounts=_to_dict(container.volume_mounts) or [],
    )


def _to_dict(obj: Any) -> Any:
    """Kubernetes model objects (or dicts) as camelCase dicts without None values."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return {k: _to_dict(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_to_dict(v) for v in obj]
    if hasattr(obj, "attribute_map") and hasattr(obj, "to_dict"):
        out = {}
        for attr, key in obj.attribute_map.items():
            value = getattr(obj, attr)
            if value is not None:
                out[key] = _to_dict(value)
        return out
    return obj


def render_job(
    path: Path, params: Mapping[str, Any] | None = None, run_uuid: str | None = None
) -> RenderedJob:
    """Check, compile and resolve one job component with ``params`` (as ``-P``)."""
    op = check(path, params)
    return _resolve_operation(op, Path(path).stem, run_uuid)


def render_matrix(path: Path, params: Mapping[str, Any] | None = None) -> list[RenderedJob]:
    """The jobs of a ``mapping`` matrix operation, one per suggestion."""
    op = check(path, params)
    matrix = op.matrix
    if matrix is None or matrix.kind != "mapping":
        raise ValueError(f"{path} has no mapping matrix")
    # The matrix run as stored by the API: compiled, with its own params applied.
    compiled, op_params = OperationSpecification.compile_operation_with_params(op)
    CompiledOperationSpecification.apply_params(compiled, op_params)
    children = get_ops_from_suggestions(op.to_dict(), compiled, matrix.values)
    return [_resolve_operation(child, f"{Path(path).stem}-{i}") for i, child in enumerate(children)]


def render_dag(path: Path, params: Mapping[str, Any] | None = None) -> dict[str, RenderedJob]:
    """Every op of a DAG component, rendered in topological order (upstream first)."""
    op = check(path, params)
    dag_job = _resolve_operation(op, Path(path).stem)
    compiled = dag_job.compiled
    dag = CompiledOperationSpecification.apply_operation_contexts(compiled).run
    dag_inputs = dag_job.inputs
    rendered: dict[str, RenderedJob] = {}
    for name in dag.sort_topologically(flatten=True):
        op_spec = dag.get_op_spec_by_name(name)
        literal = {}
        for pname, param in (op_spec.params or {}).items():
            literal[pname] = V1Param(value=_ref_value(param, dag_inputs, rendered, name, pname))
        op_spec.params = literal
        op_spec.dependencies = None
        rendered[name] = _resolve_operation(op_spec, name)
    return rendered


def file_kind(path: Path) -> str:
    """``job`` or ``dag`` (a component's run kind), ``matrix`` (an operation with a matrix) or
    ``operation``."""
    data = read_yaml(path)
    if data["kind"] == "operation":
        return "matrix" if data.get("matrix") else "operation"
    return data["run"]["kind"]


def render_file(path: Path, params: Mapping[str, Any] | None = None) -> list[RenderedJob]:
    """Every job that a polyaxonfile makes, as the agent resolves it: a job component's one,
    a DAG's ops (upstream first), a matrix operation's jobs (one per suggestion)."""
    kind = file_kind(path)
    if kind == "dag":
        return list(render_dag(path, params).values())
    if kind == "matrix":
        return render_matrix(path, params)
    return [render_job(path, params)]


def _ref_value(
    param: V1Param, dag_inputs: dict[str, Any], upstream: dict[str, RenderedJob], op: str, name: str
) -> Any:
    if not param.ref:
        return param.value
    section, _, key = param.value.partition(".")
    if section != "inputs":
        raise AssertionError(f"op {op} param {name}: only inputs refs are rendered here")
    if param.ref == "dag":
        return dag_inputs[key]
    kind, _, upstream_name = param.ref.partition(".")
    if kind != "ops" or upstream_name not in upstream:
        raise AssertionError(f"op {op} param {name}: {param.ref} is not an upstream op")
    return upstream[upstream_name].inputs[key]


# ---------------------------------------------------------------------------------------
# Template names: Polyaxon renders an undefined name as an empty string, silently.


def context_names(job: RenderedJob) -> tuple[set[str], set[str]]:
    """(top-level names besides the inputs/outputs, ``globals`` keys) of a job's runtime
    context, as the resolver built it; ``params`` is added by Polyaxon's parser."""
    return set(job.contexts) | {"params"}, set(job.contexts.get("globals") or {})


def iter_strings(data: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in a loaded YAML document, with its path."""
    if isinstance(data, str):
        yield where, data
    elif isinstance(data, Mapping):
        for k, v in data.items():
            yield from iter_strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from iter_strings(v, f"{where}[{i}]")


@dataclass(frozen=True)
class TemplateRef:
    where: str
    name: str  # a top-level name, or "globals.KEY"


def template_refs(data: Any) -> list[TemplateRef]:
    """The names each ``{{ }}``/``{% %}`` template in ``data`` reads from its context.

    Names a template defines itself (``{% macro %}``, ``{% set %}``, loop variables) are not
    context names; jinja's own analysis leaves them out. Attribute reads on ``globals`` are
    reported as ``globals.KEY`` so that a misspelt key is caught too.
    """
    env: jinja2.Environment = get_engine()
    refs = []
    for where, text in iter_strings(data):
        if "{{" not in text and "{%" not in text:
            continue
        ast = env.parse(text)
        for name in sorted(meta.find_undeclared_variables(ast)):
            refs.append(TemplateRef(where, name))
        for node in ast.find_all(nodes.Getattr):
            if isinstance(node.node, nodes.Name) and node.node.name == "globals":
                refs.append(TemplateRef(where, f"globals.{node.attr}"))
    return refs


def declared_names(data: Mapping[str, Any]) -> set[str]:
    return {io["name"] for section in ("inputs", "outputs") for io in data.get(section) or []}


def process_base_env(**extra: str) -> dict[str, str]:
    """The test process's environment less what would leak into a rendered command."""
    drop = ("MLFLOW_", "GOOGLE_APPLICATION_CREDENTIALS", "POLYAXON", "PROJECT_ROOT", "PG")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env
