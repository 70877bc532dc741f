"""The manual: the docs site builds with --strict, works offline, and the README stays one
screen whose links into docs/ resolve. Fast: mkdocs only, no kernel, server or TensorFlow."""

import ast
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200
# A Markdown link or image: [text](target); the target's anchor and title are cut off later.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
API = DOCS / "api"
# The API reference documents these packages, module by module; it leaves out their
# __main__ modules (python -m's entry points: they run main and define nothing).
API_PACKAGES = ("lib", "app", "runner", "tools")


class _Assets(HTMLParser):
    """Collects the URLs a page makes the browser fetch: scripts, stylesheets, fonts, icons,
    images, frames (an `<a href>` is a link the reader may follow, not a fetch)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video") and found.get("src"):
            self.urls.append(found["src"] or "")
        rel = (found.get("rel") or "").split()
        if tag == "link" and found.get("href") and not {"canonical", "alternate"} & set(rel):
            self.urls.append(found["href"] or "")
        self.urls.extend(re.findall(r"url\([\"']?([^\"')]*)", found.get("style") or ""))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "true"}  # material's banner, not a warning of ours
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_mkdocs_build_strict_passes(site: Path) -> None:
    pages = {p.relative_to(DOCS).with_suffix("") for p in DOCS.rglob("*.md")}
    built = {
        p.parent.relative_to(site) if p.parent != site else Path("index")
        for p in site.rglob("index.html")
    }
    for page in pages:
        assert (Path("index") if page.name == "index" else page) in built, f"{page}.md not built"


def test_site_fetches_nothing_from_elsewhere(site: Path) -> None:
    remote = []
    for page in site.rglob("*.html"):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        remote += [f"{page.relative_to(site)}: {url}" for url in parser.urls if REMOTE.match(url)]
        if "fonts.googleapis" in page.read_text(encoding="utf-8"):
            remote.append(f"{page.relative_to(site)}: a web font")
    for sheet in site.rglob("*.css"):
        for url in re.findall(r"(?:url\(|@import\s+)[\"']?([^\"')\s]+)", sheet.read_text()):
            if REMOTE.match(url):
                remote.append(f"{sheet.relative_to(site)}: {url}")
    assert not remote, "the site must work offline; remote assets:\n" + "\n".join(remote)


def _modules() -> set[str]:
    """The dotted names of the API_PACKAGES' modules (a package by its own name)."""
    names = set()
    for package in API_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] != "__main__":
                names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_api_reference_lists_every_module() -> None:
    listed = [
        name
        for page in sorted(API.glob("*.md"))
        for name in re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M)
    ]
    modules = _modules()
    missing = sorted(modules - set(listed))
    assert not missing, f"docs/api/: add a '::: module' line to its group's page for {missing}"
    gone = sorted(set(listed) - modules)
    assert not gone, f"docs/api/ lists modules that do not exist: {gone}"
    twice = sorted({name for name in listed if listed.count(name) > 1})
    assert not twice, f"docs/api/ lists modules more than once: {twice}"


def test_api_reference_links_the_docstrings_roles(site: Path) -> None:
    # docs/griffe_roles.py turns :func:`name` into a link (or code); a role it misses would
    # print as it stands.
    pages = list((site / "api").rglob("*.html"))
    raw = [
        f"{page.relative_to(site)}: {role}"
        for page in pages
        for role in re.findall(r":[a-z]+:<code>[^<]*</code>", page.read_text(encoding="utf-8"))
    ]
    assert not raw, "Sphinx roles left in the API reference:\n" + "\n".join(raw)
    core = (site / "api" / "lib-core" / "index.html").read_text(encoding="utf-8")
    assert 'href="#lib.core.errors.UserError"><code>UserError</code></a>' in core


def test_docs_images_are_small_and_shown() -> None:
    # The screenshots (scripts/docs_screenshots.sh) live in git: each stays small, and used.
    targets = [
        Path(target).name
        for page in DOCS.rglob("*.md")
        for target in LINK.findall(page.read_text(encoding="utf-8"))
    ]
    images = sorted((DOCS / "images").iterdir())
    assert images, "docs/images/ holds no picture"
    large = [f"{p.name}: {p.stat().st_size} bytes" for p in images if p.stat().st_size > 300_000]
    assert not large, f"docs/images/: shrink these (at most 300 kB): {large}"
    unused = [p.name for p in images if p.name not in targets]
    assert not unused, f"docs/images/: no page shows {unused}"


def test_readme_is_one_screen() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move text into docs/"
    )


def _anchors(page: Path) -> set[str]:
    """The ids Python-Markdown's toc extension gives the page's headings."""
    from markdown.extensions.toc import slugify  # mkdocs' own dependency

    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slugify(m.group(1), "-") for m in re.finditer(r"^#+\s+(.*?)\s*$", text, re.M)}


def test_readme_links_into_docs_resolve() -> None:
    targets = [t for t in LINK.findall(README.read_text(encoding="utf-8")) if t.startswith("docs/")]
    assert len(targets) >= 10, f"the README should link into the docs: {targets}"
    broken = []
    for target in targets:
        path, _, anchor = target.partition("#")
        page = ROOT / path
        if not page.is_file():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in _anchors(page):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, "README links into docs/ that do not resolve:\n" + "\n".join(broken)


def _picture(page: Path) -> str:
    match = re.search(r"^```text\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)
    assert match, f"{page.name}: no stage picture (a ```text block)"
    return match.group(1)


def test_stage_picture_is_the_same_in_readme_and_docs() -> None:
    assert _picture(README) == _picture(DOCS / "index.md")


@pytest.mark.parametrize("stage", ["prep", "train", "tune", "infer", "compare"])
def test_configuration_reference_lists_every_parameter(stage: str) -> None:
    cells = json.loads((ROOT / "notebooks" / f"{stage}.ipynb").read_text())["cells"]
    source = next(
        "".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])
    )
    names = [t.id for node in ast.parse(source).body for t in node.targets]
    reference = (DOCS / "configuration.md").read_text(encoding="utf-8")
    section = reference.split(f"\n## {stage}\n", 1)[1].split("\n## ", 1)[0]
    missing = [n for n in names if f"| `{n}` |" not in section]
    assert not missing, f"docs/configuration.md, {stage}: parameters not listed: {missing}"
