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
    assert set(GPU_SPECS) == {"T4", "L4", "A100", "A100-40GB", "H100-SXM", "H100-PCIe", "H200",
                              "H100-NVL", "H200-NVL", "GH200", "GH200-144GB"}


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


def test_gpu_names_match_word_by_word():
    assert gpu_key("NVIDIA A100-SXM4-80GB") == "A100"
    assert gpu_key("NVIDIA A100-PCIE-40GB") == "A100-40GB"
    assert GPU_SPECS["A100-40GB"]["memory_gb"] == 40
    assert gpu_key("NVIDIA H100 80GB HBM3") == "H100-SXM"
    # chips the table does not list are not mistaken for one it does (an L40S is no L4)
    for other in ("NVIDIA L40S", "L40", "T400", "A1000", "NVIDIA B200", "H800"):
        with pytest.raises(ValueError, match="unknown gpu"):
            gpu_key(other)


def test_t4_gets_fp16_not_emulated_bf16(monkeypatch):
    import torch

    from llmcourse.hardware import native_bf16
    from llmcourse.profiles import profile
    from llmcourse.train import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # as torch says on a T4
    for capability, expected in (((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        assert native_bf16() is (expected == "bf16")
        assert profile("gpu").precision == expected
        assert resolve_precision("auto", torch.device("cuda")) == expected


def test_nvl_cards_and_grace_hopper():
    # CUDA's names for them; an NVL card is no SXM one, a GH200 is no H200
    assert gpu_key("NVIDIA H100 NVL") == "H100-NVL"
    assert gpu_key("NVIDIA H200 NVL") == "H200-NVL"
    assert gpu_key("NVIDIA GH200 480GB") == "GH200"
    assert gpu_key("NVIDIA GH200 144G HBM3e") == "GH200-144GB"
    assert gpu_key("h100-nvl") == "H100-NVL"
    # data sheets: NVL bf16 1,671 TFLOPS with sparsity (835.5 dense), TF32 835 (417.5 dense),
    # FP32 60; GH200's GPU computes as an H100 SXM (bf16 989.5 dense)
    for key in ("H100-NVL", "H200-NVL"):
        assert peak_flops(key, "bf16") == peak_flops(key, "fp16") == 835.5e12
        assert peak_flops(key, "tf32") == 417.5e12 and peak_flops(key, "fp32") == 60e12
    for key in ("GH200", "GH200-144GB"):
        for p in ("fp32", "tf32", "fp16", "bf16"):
            assert peak_flops(key, p) == peak_flops("H100-SXM", p)
    assert [GPU_SPECS[k]["memory_gb"] for k in ("H100-NVL", "H200-NVL", "GH200", "GH200-144GB")] \
        == [94, 141, 96, 144]
    assert peak_flops("NVIDIA H100 NVL") < peak_flops("NVIDIA H100 PCIe") * 1.2  # ~835 vs 756


def test_current_gpu_of_a_mocked_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name, key in (("NVIDIA H200 NVL", "H200-NVL"), ("NVIDIA GH200 480GB", "GH200"),
                      ("NVIDIA RTX PRO 6000 Blackwell", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, n=name: n)
        assert current_gpu() == key
