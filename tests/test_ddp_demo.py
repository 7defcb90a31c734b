import json
import subprocess
import sys

import pytest

from llmcourse.ddp_demo import free_port, launch


@pytest.mark.slow
def test_two_ranks_stay_identical_and_match_one_process(tmp_path):
    r = launch(2, steps=3, batch=8, out=tmp_path / "ddp.json")
    assert r["world_size"] == 2 and r["per_rank_batch"] == 4 and r["steps"] == 3
    assert r["max_diff_between_ranks"] == 0.0  # every rank applied the same update
    assert r["max_diff_vs_single_process"] < 1e-4  # same maths as one process, full batch
    assert r["ddp_losses"] == pytest.approx(r["single_losses"], abs=1e-4)
    assert r["ddp_losses"][-1] < r["ddp_losses"][0]  # it trains


def test_runs_alone_without_torchrun(tmp_path):
    out = tmp_path / "one.json"
    proc = subprocess.run([sys.executable, "-m", "llmcourse.ddp_demo", "--steps", "1",
                           "--batch", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["world_size"] == 1 and r["max_diff_vs_single_process"] == 0.0


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="nproc must be an int >= 1"):
        launch(0, out=tmp_path / "x.json")
    proc = subprocess.run([sys.executable, "-m", "llmcourse.ddp_demo", "--steps", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "--steps and --batch must be >= 1" in proc.stderr
    assert 1024 <= free_port() < 65536
