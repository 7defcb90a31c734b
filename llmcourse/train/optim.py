"""How a run learns: the optimizer :class:`~llmcourse.train.TrainConfig` names.

``adamw`` (the default): AdamW with weight decay on matrices (≥2-D parameters) only, fused on
CUDA: the optimizer of GPT-2/3 and nanoGPT.

``muon``: Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"),
``torch.optim.Muon``: SGD momentum whose update matrix is orthogonalised by five Newton–Schulz
steps, for the 2-D hidden weight matrices; AdamW for the rest (embeddings, the output head, norms
and biases), as the Muon write-up and Moonlight (Liu et al. 2025, "Muon is Scalable for LLM
Training") do. :func:`muon_split` says which parameter goes where.

Learning rates: every group follows the schedule's ``lr`` (:func:`~llmcourse.train.lr_at`), so
one ``TrainConfig.lr`` drives both. Muon's step on an ``A×B`` matrix is ``0.2·sqrt(max(A, B))·lr``
(``adjust_lr_fn="match_rms_adamw"``, Moonlight's rule): it gives the orthogonalised update the
RMS of an AdamW update, so AdamW's learning rate and weight decay carry over. Weight decay:
``TrainConfig.weight_decay`` on the Muon matrices and on AdamW's ≥2-D parameters (decoupled, as
AdamW's), none on 1-D ones; Muon's momentum is 0.95 with Nesterov, AdamW's betas and eps are the
config's. The two live in one :class:`MuonAdamW`, so the trainer, the GradScaler and checkpoints
see one optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from llmcourse.train.config import TrainConfig, lr_at

_HEAD_NAMES = ("lm_head", "head", "classifier", "score")  # output heads by attribute name


def _head_param_ids(model: nn.Module) -> set[int]:
    """The parameters of the output head: ``get_output_embeddings()`` (Hugging Face) and any
    module whose attribute name is one of ``_HEAD_NAMES``."""
    ids: set[int] = set()
    get = getattr(model, "get_output_embeddings", None)
    head = None
    if callable(get):
        try:
            head = get()
        except (NotImplementedError, AttributeError):
            head = None
    if isinstance(head, nn.Module):
        ids |= {id(p) for p in head.parameters()}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in _HEAD_NAMES:
            ids |= {id(p) for p in module.parameters()}
    return ids


def _split(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
                 for p in m.parameters()}
    skip = embedding | _head_param_ids(model)
    out: dict[str, list[tuple[str, nn.Parameter]]] = {"muon": [], "adamw_decay": [],
                                                      "adamw_no_decay": []}
    for name, p in model.named_parameters():  # a tied weight appears once
        if not p.requires_grad:
            continue
        if p.dim() == 2 and id(p) not in skip:
            out["muon"].append((name, p))
        else:
            out["adamw_decay" if p.dim() >= 2 else "adamw_no_decay"].append((name, p))
    return out


def muon_split(model: nn.Module) -> dict[str, list[str]]:
    """Which trainable parameters ``TrainConfig(optimizer="muon")`` gives to which optimizer.

    Returns the parameter names in three lists: ``"muon"`` (every 2-D parameter that is neither
    an ``nn.Embedding``'s nor the output head's: the attention and MLP matrices),
    ``"adamw_decay"`` (the other ≥2-D parameters: embeddings, the head, also when tied to the
    embedding) and ``"adamw_no_decay"`` (biases, norm gains). The head is what
    ``model.get_output_embeddings()`` returns (Hugging Face models) and any module named
    ``lm_head``, ``head``, ``classifier`` or ``score``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return {k: [name for name, _ in v] for k, v in _split(model).items()}


class MuonAdamW(torch.optim.Optimizer):
    """``torch.optim.Muon`` on ``muon_params`` and ``torch.optim.AdamW`` on ``adamw_groups``,
    stepped together as one optimizer (one ``param_groups`` list, Muon's group first; one
    ``state``; ``state_dict``/``load_state_dict`` as for any optimizer).

    Args:
        muon_params: 2-D parameters (Muon refuses any other shape).
        adamw_groups: AdamW parameter groups (dicts with ``params`` and ``weight_decay``).
        lr, weight_decay: both optimizers' (Muon rescales its ``lr`` per matrix, see
            :mod:`llmcourse.train.optim`); betas, eps: AdamW's; momentum: Muon's (Nesterov).
        fused: fused AdamW (CUDA).
    """

    def __init__(self, muon_params: Iterable[nn.Parameter], adamw_groups: list[dict], *,
                 lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, momentum: float = 0.95, fused: bool = False) -> None:
        muon_params = list(muon_params)
        if not isinstance(adamw_groups, (list, tuple)) or not all(
                isinstance(g, dict) and "params" in g for g in adamw_groups):
            raise TypeError("adamw_groups must be a list of dicts with 'params', got "
                            f"{type(adamw_groups).__name__}")
        if not muon_params:
            raise ValueError("muon_params is empty: optimizer='muon' needs 2-D hidden weight "
                             "matrices, and the model has none outside its embeddings and head")
        adamw_groups = [{**g, "params": list(g["params"])} for g in adamw_groups]
        adamw_groups = [g for g in adamw_groups if g["params"]]  # no empty AdamW groups
        self.muon = torch.optim.Muon(muon_params, lr=lr, weight_decay=weight_decay,
                                     momentum=momentum, nesterov=True,
                                     adjust_lr_fn="match_rms_adamw")
        self.adamw = (torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, eps=eps,
                                        **({"fused": True} if fused else {}))
                      if adamw_groups else None)
        inner = [*self.muon.param_groups, *(self.adamw.param_groups if self.adamw else [])]
        super().__init__(inner, {})  # the same group dicts: setting a group's lr sets both
        self._link()

    def _link(self) -> None:
        """Point both inner optimizers at this one's groups and state (after a load, too)."""
        n = len(self.muon.param_groups)
        self.muon.param_groups = self.param_groups[:n]
        self.muon.state = self.state
        if self.adamw is not None:
            self.adamw.param_groups = self.param_groups[n:]
            self.adamw.state = self.state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._link()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        if self.adamw is not None:
            self.adamw.step()
        return loss


def _make_optimizer(model: nn.Module, cfg: TrainConfig,
                    device: torch.device) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names for ``model`` (see the module docstring)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    fused = device.type == "cuda"
    if cfg.optimizer == "muon":
        if not hasattr(torch.optim, "Muon"):
            raise ValueError("TrainConfig.optimizer='muon' needs torch.optim.Muon (PyTorch 2.9 or "
                             f"later); this is torch {torch.__version__}")
        split = _split(model)
        groups = [{"params": [p for _, p in split["adamw_decay"]],
                   "weight_decay": cfg.weight_decay},
                  {"params": [p for _, p in split["adamw_no_decay"]], "weight_decay": 0.0}]
        return MuonAdamW([p for _, p in split["muon"]], groups, lr=lr_at(0, cfg),
                         weight_decay=cfg.weight_decay, betas=cfg.betas, eps=cfg.eps, fused=fused)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=lr_at(0, cfg), betas=cfg.betas, eps=cfg.eps, **kwargs)
