"""A griffe extension for the API reference (mkdocs.yml): the docstrings of lib/ and runner/
name other objects with Sphinx roles (:func:`open_study`, :mod:`.pool`,
:class:`~runner.kernels.KernelPool`), which Markdown would print as they stand. Each becomes
that name in code, linked to its entry in the reference when it has one.

Resolved as Sphinx does: a leading ``.`` from the current module, ``~`` shows the last part
only, any other name from the object's scope (its members, its imports, its parents'). The link
is optional for mkdocs-autorefs: a name it cannot find (an Optuna or MLflow object) stays plain
code, without a warning.
"""

from __future__ import annotations

import contextlib
import html
import re
from typing import Any

# mkdocstrings-python's (requirements-test.txt): the docs build's, not the project's.
import griffe  # deptry: ignore[DEP003]

ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|obj|const|mod):`(~?)([^`]+)`")


def identifier(obj: griffe.Object, target: str) -> str:
    """The full dotted path that a role's target names, seen from ``obj``."""
    target = target.removesuffix("()")
    if target.startswith("."):
        module = obj if obj.is_module else obj.module
        base = module.path if module.is_init_module else module.path.rpartition(".")[0]
        return base + target
    with contextlib.suppress(KeyError):  # a full path
        return obj.modules_collection[target].path
    head, dot, rest = target.partition(".")
    try:
        return obj.resolve(head) + dot + rest
    except griffe.NameResolutionError:
        pass
    # A name that a package exports lazily (lib.tuning's __getattr__): from the one module of
    # that package (or of the object's own package) that defines it.
    package, _, name = target.rpartition(".")
    module = obj if obj.is_module else obj.module
    try:
        group = obj.modules_collection[package] if package else module
    except KeyError:
        return target
    if not group.is_init_module:
        group = group.parent
    defined = (m.members.get(name) for m in group.modules.values())
    homes = [member.path for member in defined if member is not None and not member.is_alias]
    return homes[0] if len(homes) == 1 else target


def crossrefs(obj: griffe.Object, text: str) -> str:
    """The docstring ``text`` with each role made an optional cross-reference."""

    def link(match: re.Match[str]) -> str:
        short, target = match.groups()
        title = target.lstrip(".").rpartition(".")[2] if short else target
        ref = html.escape(identifier(obj, target), quote=True)
        return f'<autoref identifier="{ref}" optional><code>{html.escape(title)}</code></autoref>'

    return ROLE.sub(link, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        todo: list[griffe.Object] = [pkg]
        while todo:
            obj = todo.pop()
            if obj.docstring is not None:
                obj.docstring.value = crossrefs(obj, obj.docstring.value)
            todo += [m for m in obj.members.values() if not m.is_alias]
