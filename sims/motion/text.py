"""The word-level tokenizer shared by the motion generator and the evaluator's text encoder.

The descriptions are templated English (``sims.motion.dataset``), so a fixed vocabulary of
the training descriptions' words, with ``<pad>`` and ``<unk>``, is all either network needs.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np
from jaxtyping import Bool, Int

__all__ = ["PAD", "UNK", "Tokenizer", "words"]

PAD, UNK = 0, 1
_WORD = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (punctuation and digits dropped)."""
    return _WORD.findall(text.lower())


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """Word-level tokenizer with a fixed vocabulary and length.

    Attributes:
        vocab: the words, in id order from 2 (0 is ``<pad>``, 1 is ``<unk>``).
        max_len: tokens per description.
    """

    vocab: tuple[str, ...]
    max_len: int

    @classmethod
    def from_texts(cls, texts, max_len: int) -> Tokenizer:
        """The sorted set of the words of ``texts`` (deterministic, order-independent)."""
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be an integer >= 1; got {max_len!r}")
        return cls(tuple(sorted({w for t in texts for w in words(str(t))})), max_len)

    @property
    def size(self) -> int:
        return len(self.vocab) + 2

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        return {w: i + 2 for i, w in enumerate(self.vocab)}

    def encode(self, texts) -> tuple[Int[np.ndarray, "n L"], Bool[np.ndarray, "n L"]]:
        """Token ids (``<unk>`` for unseen words, ``<pad>`` after the end) and the mask of
        real tokens. An empty description gets one ``<unk>`` so pooling is defined."""
        texts = [str(t) for t in np.atleast_1d(np.asarray(texts, dtype=object))]
        ids = np.full((len(texts), self.max_len), PAD, np.int32)
        for i, t in enumerate(texts):
            toks = [self._ids.get(w, UNK) for w in words(t)][: self.max_len] or [UNK]
            ids[i, : len(toks)] = toks
        return ids, ids != PAD
