import pytest

from llmcourse.hardware import GPU_SPECS, current_gpu, gpu_key, peak_flops


def test_names_normalise():
    assert gpu_key("a100") == "A100"
    assert gpu_key("H100") == "H100-SXM"
    assert gpu_key("NVIDIA H100 PCIe") == "H100-PCIe"
    assert gpu_key("NVIDIA H200") == "H200"
    assert gpu_key("Tesla T4") == "T4"
    assert gpu_key("NVIDIA L4") == "L4"


def test_peaks():
    assert peak_flops("A100") == 312e12
    assert peak_flops("H100", "bf16") == 989.5e12
    assert peak_flops("T4", "fp16") == 65e12
    assert set(GPU_SPECS) == {"T4", "L4", "A100", "H100-SXM", "H100-PCIe", "H200"}


def test_errors_list_choices():
    with pytest.raises(ValueError, match="A100"):
        gpu_key("TPUv4")
    with pytest.raises(ValueError, match="no bf16"):
        peak_flops("T4", "bf16")
    with pytest.raises(ValueError, match="fp32, tf32, fp16, bf16"):
        peak_flops("A100", "int8")
    with pytest.raises(TypeError):
        gpu_key(100)


def test_current_gpu_none_on_cpu():
    import torch

    if not torch.cuda.is_available():
        assert current_gpu() is None
