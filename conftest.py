"""Pytest set-up shared by the unit tests and strict nbval over the chapters.

* Chapters run under the ``ci`` profile unless ``LLMCOURSE_PROFILE`` says otherwise: the stored
  outputs were made with it, so ``pytest --nbval chapters/`` passes as it is.
* Under ``pytest -n N`` (pytest-xdist, as ``make test`` runs it) each test process and the
  notebook kernels it starts use one CPU thread: N processes share N cores without the
  oversubscription that makes OpenMP many times slower.
* Outputs whose bytes are not portable (HTML reprs, plotly JSON with random ids, JavaScript) are
  not compared; the chapters check what those figures hold with ``assert`` instead.
"""

import os

os.environ.setdefault("LLMCOURSE_PROFILE", "ci")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

NOT_COMPARED = ("text/html", "application/javascript", "application/vnd.plotly.v1+json")


def pytest_collectstart(collector):
    path = getattr(collector, "path", None)
    if path is not None and str(path).endswith(".ipynb"):
        collector.skip_compare = tuple(collector.skip_compare) + NOT_COMPARED
