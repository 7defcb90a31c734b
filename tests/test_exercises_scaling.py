from llmcourse.exercises.scaling import check_gpu_hours, check_model_state_bytes
from llmcourse.scaling import training_memory


def solution_states(n, stage, gpus):
    return training_memory(n, zero_stage=stage, n_gpus=gpus, activations=False)["total"]


def test_model_state_bytes(capsys):
    assert check_model_state_bytes(solution_states)
    assert not check_model_state_bytes(lambda n, s, g: 16 * n / g)  # shards at every stage
    out = capsys.readouterr().out
    assert "case 1 of 5" not in out and "case 2 of 5 is wrong" in out
    assert not check_model_state_bytes(lambda n, s, g: 12 * n)  # forgot weights and grads
    assert "16 bytes per parameter" in capsys.readouterr().out


def _not_done(*args):
    raise NotImplementedError


def test_gpu_hours(capsys):
    assert check_gpu_hours(lambda n, d, peak, mfu: 6 * n * d / (peak * mfu) / 3600)
    assert not check_gpu_hours(lambda n, d, peak, mfu: 2 * n * d / (peak * mfu) / 3600)
    assert "6 FLOPs per parameter" in capsys.readouterr().out
    assert not check_gpu_hours(lambda n, d, peak, mfu: 6 * n * d / (peak * mfu))
    assert not check_gpu_hours(_not_done)
    assert "not implemented" in capsys.readouterr().out
    assert not check_model_state_bytes(_not_done)
