"""The stage commands' parameter options: ``-p NAME VALUE`` (typed by papermill's rules),
``-r NAME VALUE`` (a string), ``-y YAML`` and ``-f FILE.yml``, collected in command-line
order, a later one over an earlier one. Used by the stage commands and by ``pipeline`` and
``status`` (which put the stage before the name)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from lib.core import paths
from lib.core.errors import ParameterError, first_line
from lib.core.params import yaml_problem


def resolve_type(value: str) -> Any:
    """papermill's ``-p`` typing rules (``papermill.cli._resolve_type``, which a test holds
    this to): True/False/None, then int, then float, else the string. Not imported from
    papermill: its import takes ~1.6 s, and the tune stage starts its trial kernels first."""
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class _ParamAction(argparse.Action):
    """Collect -p/-r/-y/-f in command-line order into one ordered list of (kind, payload)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, self.dest) or []
        items.append((self.const, values))
        setattr(namespace, self.dest, items)


def collect_parameters(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parameter options in order; a later option overrides an earlier one.

    A -y value or -f file that is not a YAML mapping raises ParameterError naming the option.
    """
    params: dict[str, Any] = {}
    for kind, payload in items or []:
        if kind == "p":
            params[payload[0]] = resolve_type(payload[1])
        elif kind == "r":
            params[payload[0]] = payload[1]
        elif kind in ("y", "f"):
            option = "-y" if kind == "y" else f"-f {payload}"
            text = payload if kind == "y" else _read_params_file(payload)
            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ParameterError(
                    option,
                    f"not valid YAML: {yaml_problem(exc)}; write a mapping, e.g. "
                    "'{epochs: 2, raw_dirs: [a, b]}'",
                ) from None
            if not isinstance(data, dict):
                raise ParameterError(
                    option,
                    f"a YAML {type(data).__name__}, not a mapping of parameter names to values: "
                    "write it as e.g. '{epochs: 2, raw_dirs: [a, b]}'",
                )
            params.update(data)
    return params


def _read_params_file(name: str) -> str:
    path = Path(name)
    if not path.exists() and not path.is_absolute():
        path = paths.resolve(name)  # conf/foo.yml works from any cwd
    if not path.is_file():
        raise ParameterError(
            f"-f {name}",
            "no such file: give a YAML file of parameters (a relative path is also looked "
            f"up in the project root, e.g. conf/...; root: {paths.project_root()})",
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # unreadable: the file the user named
        raise ParameterError(f"-f {name}", f"cannot be read: {first_line(exc)}") from None


def add_parameter_options(p: argparse.ArgumentParser) -> None:
    """-p/-r/-y/-f, gathered in order into ``params`` (see :func:`collect_parameters`)."""
    p.add_argument(
        "-p",
        "--parameters",
        dest="params",
        nargs=2,
        metavar=("NAME", "VALUE"),
        action=_ParamAction,
        const="p",
        help="a parameter, typed as papermill does",
    )
    p.add_argument(
        "-r",
        "--parameters-raw",
        dest="params",
        nargs=2,
        metavar=("NAME", "VALUE"),
        action=_ParamAction,
        const="r",
        help="a parameter kept as a string",
    )
    p.add_argument(
        "-y",
        "--parameters-yaml",
        dest="params",
        metavar="YAML",
        action=_ParamAction,
        const="y",
        help="parameters as a YAML mapping",
    )
    p.add_argument(
        "-f",
        "--parameters-file",
        dest="params",
        metavar="FILE",
        action=_ParamAction,
        const="f",
        help="parameters from a YAML file",
    )
