"""Llama ↔ Hugging Face: the config, the parameter names and loading a checkpoint.

:class:`llmcourse.llama.Llama` uses Hugging Face's parameter names, so a conversion is a copy
except for Mixtral's experts, which transformers 5 stores fused (``gate_up_proj`` (E, 2I, C),
``down_proj`` (E, C, I)) and transformers 4 as ``block_sparse_moe.experts.N.w1/w2/w3``.
:meth:`Llama.to_hf`, :meth:`Llama.from_hf`, :meth:`Llama.hf_config` and
:meth:`Llama.from_pretrained` call the functions here.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from llmcourse._checks import check_bool, check_path, check_str, check_type
from llmcourse.llama import PINNED_REVISIONS, Llama, LlamaConfig

__all__ = ["from_hf", "from_pretrained", "hf_config", "to_hf"]

_HF_TYPES = ("llama", "mistral", "qwen3", "mixtral")


def hf_config(config: LlamaConfig):
    """The Hugging Face config of the equivalent model: ``MixtralConfig`` with experts,
    ``Qwen3Config`` with QK-norm, ``MistralConfig`` with a sliding window, else
    ``LlamaConfig`` (``ValueError`` for QK-norm with experts: no such HF model here)."""
    import transformers

    cfg = check_type("config", config, LlamaConfig)
    common = dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.n_embd,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.block_size, hidden_act="silu",
        rms_norm_eps=cfg.rms_norm_eps, rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_word_embeddings, attention_dropout=cfg.dropout,
        bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if cfg.n_experts is not None:
        if cfg.qk_norm:
            raise ValueError("no Hugging Face model here has QK-norm with Mixtral's experts; "
                             "config.qk_norm with config.n_experts cannot be exported")
        return transformers.MixtralConfig(
            **common, sliding_window=cfg.sliding_window, num_local_experts=cfg.n_experts,
            num_experts_per_tok=cfg.n_experts_per_tok, router_jitter_noise=0.0,
            router_aux_loss_coef=cfg.router_aux_loss_coef, output_router_logits=False)
    if cfg.qk_norm:
        return transformers.Qwen3Config(
            **common, attention_bias=False, use_sliding_window=cfg.sliding_window is not None,
            sliding_window=cfg.sliding_window, max_window_layers=0)
    if cfg.sliding_window is not None:
        return transformers.MistralConfig(**common, sliding_window=cfg.sliding_window)
    return transformers.LlamaConfig(**common, attention_bias=False, mlp_bias=False)


def to_hf(model: Llama):
    """The Hugging Face model equal to ``model`` (class by :func:`hf_config`), same logits.

    ``save_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` then work on our weights.
    """
    from transformers import AutoModelForCausalLM

    check_type("model", model, Llama)
    hf = AutoModelForCausalLM.from_config(hf_config(model.config))
    ours = {k: v.detach() for k, v in model.state_dict().items()}
    new = {}
    for name, tensor in hf.state_dict().items():
        value = _hf_tensor(name, ours, model.config)
        if value.shape != tensor.shape:  # pragma: no cover - guarded by the config
            raise RuntimeError(f"shape mismatch for {name}: {value.shape} vs {tensor.shape}")
        new[name] = value.clone().to(tensor.dtype)
    hf.load_state_dict(new, strict=True)
    if model.config.tie_word_embeddings:
        hf.tie_weights()
    return hf.to(model.lm_head.weight.device).train(model.training)


def from_hf(model) -> Llama:
    """Build a Llama from a Hugging Face ``LlamaForCausalLM``, ``MistralForCausalLM``,
    ``Qwen3ForCausalLM`` or ``MixtralForCausalLM`` (the inverse of :func:`to_hf`).

    Raises ``ValueError`` for variants this model does not implement (biases, another
    activation, scaled RoPE, router jitter, windows on only some layers …).
    """
    hf_cfg = getattr(model, "config", None)
    model_type = getattr(hf_cfg, "model_type", None)
    if model_type not in _HF_TYPES or not hasattr(model, "lm_head"):
        raise TypeError("model must be a transformers LlamaForCausalLM, MistralForCausalLM, "
                        f"Qwen3ForCausalLM or MixtralForCausalLM, got {type(model).__name__}")
    config = _config_from_hf(hf_cfg)
    hf_sd = model.state_dict()
    ours = Llama(config)
    new = {}
    for key, tensor in ours.state_dict().items():
        new[key] = _our_tensor(key, hf_sd, config).detach().clone().to(tensor.dtype)
    ours.load_state_dict(new, strict=True)
    return ours.to(model.lm_head.weight.device).train(model.training)


def from_pretrained(name_or_path: str | Path, revision: str | None = None,
                    verbose: bool = True) -> Llama:
    """Load a Hugging Face Llama-family model: a local folder (``save_pretrained``'s, offline)
    or, when ``name_or_path`` is not a folder, a Hub name (e.g. ``"HuggingFaceTB/SmolLM2-135M"``,
    at ``revision``, by default the commit pinned in :data:`PINNED_REVISIONS`, else
    ``"main"``). Never runs remote code.

    The returned model's ``source`` says which was used (printed when ``verbose``).
    """
    from transformers import AutoModelForCausalLM

    path = check_path("name_or_path", name_or_path)
    if revision is not None:
        check_str("revision", revision, empty=False)
    check_bool("verbose", verbose)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"name_or_path {str(path)!r} is a folder without config.json; "
                             "expected a save_pretrained folder")
        hf = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False)
        source = f"local folder {path}"
    else:
        name = str(name_or_path)
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
            raise ValueError(f"name_or_path {name!r} is neither a folder nor a Hub name "
                             "like 'HuggingFaceTB/SmolLM2-135M'")
        rev = revision or PINNED_REVISIONS.get(name, "main")
        try:
            hf = AutoModelForCausalLM.from_pretrained(name, revision=rev,
                                                      trust_remote_code=False)
        except OSError as e:
            raise ValueError(f"could not load {name!r} at revision {rev!r} from the Hugging "
                             f"Face Hub (or its cache): {e}") from e
        source = f"Hugging Face Hub {name} @ {rev}"
    model = from_hf(hf)
    model.source = source
    if verbose:
        print(f"Llama.from_pretrained: {source}")
    return model


# --------------------------------------------------------------------------------------------
# Hugging Face name and config mapping
# --------------------------------------------------------------------------------------------

_EXPERT = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate|up|down)_proj\.weight")
_HF_FUSED = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)")
_HF_LEGACY = re.compile(r"model\.layers\.(\d+)\.block_sparse_moe\.(.*)")
_LEGACY_NAMES = {"w1": "gate", "w2": "down", "w3": "up"}  # transformers < 5 Mixtral experts


def _our_tensor(key: str, hf_sd: dict, config: LlamaConfig) -> torch.Tensor:
    """Our parameter ``key`` from a Hugging Face state dict (fused or per-expert Mixtral)."""
    if key in hf_sd:
        return hf_sd[key]
    m = _EXPERT.fullmatch(key)
    if m:
        layer, e, which = int(m[1]), int(m[2]), m[3]
        fused = f"model.layers.{layer}.mlp.experts."
        if fused + "gate_up_proj" in hf_sd:  # transformers 5: (E, 2I, C) and (E, C, I)
            if which == "down":
                return hf_sd[fused + "down_proj"][e]
            gate, up = hf_sd[fused + "gate_up_proj"][e].chunk(2, dim=0)  # (I, C) each
            return gate if which == "gate" else up
        w = {v: k for k, v in _LEGACY_NAMES.items()}[which]
        return hf_sd[f"model.layers.{layer}.block_sparse_moe.experts.{e}.{w}.weight"]
    legacy = key.replace(".mlp.gate.", ".block_sparse_moe.gate.")
    if legacy in hf_sd:
        return hf_sd[legacy]
    raise ValueError(f"the Hugging Face model has no weight for our {key}")


def _hf_tensor(name: str, ours: dict, config: LlamaConfig) -> torch.Tensor:
    """Hugging Face's parameter ``name`` from our state dict (the inverse of _our_tensor)."""
    if name in ours:
        return ours[name]
    m = _HF_FUSED.fullmatch(name)
    if m:
        layer, which = int(m[1]), m[2]
        experts = range(config.n_experts)
        p = f"model.layers.{layer}.mlp.experts."
        if which == "down_proj":
            return torch.stack([ours[f"{p}{e}.down_proj.weight"] for e in experts])  # (E, C, I)
        return torch.stack([torch.cat([ours[f"{p}{e}.gate_proj.weight"],
                                       ours[f"{p}{e}.up_proj.weight"]]) for e in experts])
    m = _HF_LEGACY.fullmatch(name)
    if m:
        layer, rest = int(m[1]), m[2]
        if rest == "gate.weight":
            return ours[f"model.layers.{layer}.mlp.gate.weight"]
        e, w = re.fullmatch(r"experts\.(\d+)\.(w[123])\.weight", rest).groups()
        return ours[f"model.layers.{layer}.mlp.experts.{e}.{_LEGACY_NAMES[w]}_proj.weight"]
    raise RuntimeError(f"no weight of ours maps onto Hugging Face's {name}")  # pragma: no cover


def _rope_theta(hf_cfg) -> float:
    params = getattr(hf_cfg, "rope_parameters", None)  # transformers 5
    if params is None:  # transformers 4: rope_theta and rope_scaling
        scaling = getattr(hf_cfg, "rope_scaling", None) or {}
        params = {"rope_type": scaling.get("rope_type", scaling.get("type", "default")),
                  "rope_theta": getattr(hf_cfg, "rope_theta", 10000.0)}
    if params.get("rope_type", "default") != "default":
        raise ValueError(f"model.config's RoPE type {params.get('rope_type')!r} is not supported; "
                         "expected 'default' (no RoPE scaling)")
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError("model.config.partial_rotary_factor must be 1.0")
    return float(params["rope_theta"])


def _config_from_hf(hf_cfg) -> LlamaConfig:
    """Our :class:`LlamaConfig` from a Hugging Face Llama/Mistral/Qwen3/Mixtral config."""
    checks = {
        "hidden_act": (getattr(hf_cfg, "hidden_act", "silu") == "silu", "'silu'"),
        "attention_bias": (not getattr(hf_cfg, "attention_bias", False), "False"),
        "mlp_bias": (not getattr(hf_cfg, "mlp_bias", False), "False"),
        "pretraining_tp": (getattr(hf_cfg, "pretraining_tp", 1) in (None, 1), "1"),
        "router_jitter_noise": (not getattr(hf_cfg, "router_jitter_noise", 0.0), "0"),
    }
    for field_name, (ok, expected) in checks.items():
        if not ok:
            raise ValueError(f"model.config.{field_name}={getattr(hf_cfg, field_name)!r} is not "
                             f"supported; expected {expected}")
    model_type = hf_cfg.model_type
    window = getattr(hf_cfg, "sliding_window", None) if model_type != "llama" else None
    if model_type == "qwen3":
        kinds = set(getattr(hf_cfg, "layer_types", None) or ["full_attention"])
        if not getattr(hf_cfg, "use_sliding_window", False) or kinds == {"full_attention"}:
            window = None
        elif kinds != {"sliding_attention"}:
            raise ValueError("model.config.layer_types mixes sliding and full attention layers; "
                             "Llama applies one sliding_window to every layer")
    experts = getattr(hf_cfg, "num_local_experts", None) if model_type == "mixtral" else None
    kwargs = {}
    if experts is not None:
        kwargs = dict(n_experts=experts, n_experts_per_tok=hf_cfg.num_experts_per_tok,
                      router_aux_loss_coef=float(hf_cfg.router_aux_loss_coef))
    return LlamaConfig(
        vocab_size=hf_cfg.vocab_size, block_size=hf_cfg.max_position_embeddings,
        n_layer=hf_cfg.num_hidden_layers, n_head=hf_cfg.num_attention_heads,
        n_embd=hf_cfg.hidden_size, n_kv_head=hf_cfg.num_key_value_heads or None,
        head_dim=getattr(hf_cfg, "head_dim", None) or None,
        intermediate_size=hf_cfg.intermediate_size, rope_theta=_rope_theta(hf_cfg),
        rms_norm_eps=float(hf_cfg.rms_norm_eps),
        tie_word_embeddings=bool(getattr(hf_cfg, "tie_word_embeddings", False)),
        qk_norm=model_type == "qwen3", sliding_window=window,
        dropout=float(getattr(hf_cfg, "attention_dropout", 0.0) or 0.0), **kwargs)
