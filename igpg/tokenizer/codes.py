"""Extract every zoo network's codes once, to disk, for the generator to train on.

    DIR/codes.safetensors   one int16/int32 tensor "codes.<net_id>" (N, Q) and "side.<net_id>" (L,) per network
    DIR/index.json          {"tokenizer": ..., "zoo": ..., "nets": {net_id: {"arch": ..., "chunks": N}}}

Written atomically; re-running replaces the files as a whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from igpg.errors import IgpgError
from igpg.io import atomic_write_text, load_weights, save_weights
from igpg.tokenizer.tokenizer import Codes, WeightTokenizer
from igpg.zoo.catalogue import Catalogue

CODES_FILE = "codes.safetensors"
INDEX_FILE = "index.json"


def extract_codes(tok: WeightTokenizer, zoo: Catalogue, out: str | Path, tokenizer_name: str = "",
                  progress: Callable[[int, int], None] | None = None, where: str | None = None) -> int:
    """Encode every network of the zoo (all splits: the split flags travel with the catalogue), or those of the
    catalogue condition `where`; returns how many."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob(".*.tmp"):  # temporaries of a run killed while writing these files (see io.atomic_path)
        if p.name.startswith((f".{CODES_FILE}.", f".{INDEX_FILE}.")) and p.is_file():
            p.unlink(missing_ok=True)
    rows = zoo.rows(where) if where else zoo.rows()
    tensors, nets = {}, {}
    dtype = torch.int16 if tok.cfg.model.vocab_size <= 32767 else torch.int32
    for i, r in enumerate(rows):
        state, _ = load_weights(zoo.root / r["file"])
        codes = tok.encode(state, r["arch"])
        tensors[f"codes.{r['net_id']}"] = codes.indices.to(dtype)
        tensors[f"side.{r['net_id']}"] = codes.side.to(torch.int16)
        nets[r["net_id"]] = {"arch": r["arch"], "chunks": int(codes.indices.shape[0])}
        if progress:
            progress(i + 1, len(rows))
    save_weights(out / CODES_FILE, tensors, {"igpg.kind": "codes"})
    atomic_write_text(out / INDEX_FILE, json.dumps({"tokenizer": tokenizer_name, "zoo": str(zoo.root),
                                                    "codes_per_chunk": tok.cfg.model.codes_per_chunk, "nets": nets}))
    return len(rows)


def load_codes(path: str | Path) -> dict[str, Codes]:
    path = Path(path)
    if not (path / INDEX_FILE).is_file() or not (path / CODES_FILE).is_file():
        raise IgpgError(f"{path} holds no extracted codes (run `igpg train tokenizer` or extract them first)")
    index = json.loads((path / INDEX_FILE).read_text())
    tensors, _ = load_weights(path / CODES_FILE)
    return {nid: Codes(meta["arch"], tensors[f"codes.{nid}"].long(), tensors[f"side.{nid}"].long())
            for nid, meta in index["nets"].items()}
