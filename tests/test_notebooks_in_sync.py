"""Every chapter's .py and .ipynb hold the same code, and the .ipynb is fully executed.

Strict nbval compares nothing in a cell whose stored ``execution_count`` is null, so an
unexecuted notebook would pass while checking nothing: this test closes that hole.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
PAIRS = sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))


def test_there_are_chapters():
    assert PAIRS, "no chapters found"
    assert (CHAPTERS / "00_setup.py").exists()


@pytest.mark.parametrize("py", PAIRS, ids=lambda p: p.stem)
def test_pair_in_sync_and_executed(py: Path):
    nb_path = py.with_suffix(".ipynb")
    assert nb_path.exists(), f"{py.name} has no paired {nb_path.name}: run `make notebooks`"
    py_code = [c.source.strip() for c in jupytext.read(py).cells if c.cell_type == "code"]
    nb = nbformat.read(nb_path, as_version=4)
    nb_code = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    assert py_code == nb_code, f"{py.name} and {nb_path.name} differ: run `make notebooks`"
    unexecuted = [i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None]
    assert not unexecuted, f"{nb_path.name}: cells {unexecuted} are not executed"
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), f"{nb_path.name} was not run top to bottom"
    assert nb_path.stat().st_size < 5e6, f"{nb_path.name} is over 5 MB (store_widget_state=False?)"
