"""The conditional autoregressive weight generator: an x-transformers decoder over a network's rows.

Sequence for one network (P prefix tokens, then one position per row, i.e. per output neuron of every layer):

    [instruction] [label_1 .. label_L] [layer_1 .. layer_A] [row_1 .. row_R]

Row position r sees: where row r sits (layer, kind, neuron index, fan-in, ...), the codes of row r-1 (a bag of
their embeddings), and, for rows of the output layer, the token of the label it must answer for (the output
neuron i is label i: this is what lets unseen label sets and orders compose). Its hidden state h_r feeds a small
slot head that emits the row's codes: for every chunk j of the row, level q = 0..Q-1 of the residual codes, each
level conditioned on the levels below it (chunks are conditionally independent given h_r).

Shape legend: B batch, T sequence, P prefix, R rows, J chunks per row (max), Q codes per chunk, V codebook size,
D model width, E slot width, L labels, K support samples per label, A layers (architecture tokens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from x_transformers import Decoder

from igpg.arch import ACTIVATIONS
from igpg.errors import IgpgError
from igpg.generator.conditions import ARCH_FEATURES, PROFILE, SetEncoder
from igpg.generator.config import GeneratorConfig
from igpg.text import TEXT_DIM


SIDE_OFFSET = 128  # side tokens -128..127 are classes 0..255
SIDE_VOCAB = 256


@dataclass
class Conditions:
    """A batch's conditions, encoded once (`WeightGenerator.encode_conditions`) for training and both sampling paths."""

    prefix: torch.Tensor  # (B, P, D): instruction, label and architecture tokens
    prefix_mask: torch.Tensor  # (B, P): 1 where a token exists (labels and layers are padded)
    head_labels: torch.Tensor  # (B, R, D): each output row's label token, zero for hidden rows
    base_input: torch.Tensor | None  # (B, R, D): what each row sees of its base row (base_rows models), else None


def mean_key(table: nn.Embedding, keys: torch.Tensor) -> torch.Tensor:
    """(B, R, M) hashed slots (-1 pad) -> (B, R, width): the mean of each row's slot vectors (zero if none)."""
    valid = (keys >= 0).float()[..., None]
    return (table(keys.clamp(min=0)) * valid).sum(2) / valid.sum(2).clamp(min=1)


def class_slot(dataset: str, cls: int, slots: int) -> int:
    """A stable hashed index for (dataset, class) (the same in every process)."""
    import hashlib

    return int(hashlib.sha256(f"{dataset}:{cls}".encode()).hexdigest()[:8], 16) % slots


class WeightGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        if cfg.codes is None:
            raise IgpgError("generator config: no code format ('codes'); it is read from the tokenizer when training "
                            "starts")
        self.cfg = cfg
        d, e, v, q = cfg.model.dim, cfg.model.slot_dim, cfg.codes.vocab, cfg.codes.codes_per_chunk
        # conditions
        self.instr_proj = nn.Linear(TEXT_DIM, d)
        self.null_instr = nn.Parameter(torch.zeros(d))
        self.set_encoder = SetEncoder(d)
        self.class_emb = nn.Embedding(cfg.model.class_slots, d) if cfg.model.class_embedding else None
        self.null_label = nn.Parameter(torch.zeros(d))
        self.label_pos = nn.Embedding(64, d)  # which output position a label token is for
        self.arch_proj = nn.Linear(ARCH_FEATURES, d)
        self.type_emb = nn.Embedding(4, d)  # 0 instruction, 1 label, 2 architecture, 3 row
        # rows
        self.layer_emb = nn.Embedding(cfg.model.max_layers, d)
        self.kind_emb = nn.Embedding(3, d)
        self.head_emb = nn.Embedding(2, d)
        self.row_emb = nn.Embedding(cfg.model.max_row_index, d)
        self.row_feat = nn.Linear(4, d)
        if cfg.model.compositional:  # activation (one-hot), relative neuron index, layers to the output; arch tokens too
            self.comp_feat = nn.Linear(len(ACTIVATIONS) + 2, d)
            self.arch_act = nn.Embedding(len(ACTIVATIONS), d)
        self.start_row = nn.Parameter(torch.zeros(d))
        self.row_key_emb = nn.Embedding(cfg.model.row_keys, d) if cfg.model.row_keys else None
        if self.row_key_emb is not None:
            nn.init.zeros_(self.row_key_emb.weight)  # a key never trained (an unseen architecture) adds nothing
        # codes
        self.code_emb = nn.Parameter(torch.randn(q, v, e) * 0.02)  # per level
        self.chunk_emb = nn.Embedding(cfg.model.max_chunks_per_row, e)
        self.level_emb = nn.Parameter(torch.randn(q, e) * 0.02)
        self.bag_proj = nn.Linear(e, d)
        # transformer + slot head
        self.decoder = Decoder(dim=d, depth=cfg.model.depth, heads=cfg.model.heads, rotary_pos_emb=True,
                               attn_dropout=cfg.train.dropout, ff_dropout=cfg.train.dropout)
        self.slot_in = nn.Linear(d, e)
        self.slot_norm = nn.LayerNorm(e)
        self.slot_mlp = nn.Sequential(nn.Linear(e, e), nn.GELU())
        self.to_logits = nn.Parameter(torch.randn(q, e, v) * (1 / math.sqrt(e)))
        # per-layer scale token (layer_std normalisation), read off the hidden state of the layer's first row
        self.side_head = nn.Linear(d, SIDE_VOCAB) if cfg.codes.side_tokens else None
        # base rows: per-slot code embeddings for the slot head, a bag for the row position, the base layer's
        # scale token (index SIDE_VOCAB: none) and whether the row has a base at all
        if cfg.model.base_rows:
            self.base_code_emb = nn.Parameter(torch.randn(q, v, e) * 0.02)
            self.base_bag_proj = nn.Linear(e, d)
            self.base_side_emb = nn.Embedding(SIDE_VOCAB + 1, d)
            self.base_flag_emb = nn.Embedding(2, d)

    # ---- conditions -> prefix ------------------------------------------------------------------------------
    def label_tokens(self, profiles: torch.Tensor, class_ids: torch.Tensor, label_mask: torch.Tensor,
                     drop: torch.Tensor) -> torch.Tensor:
        """profiles (B, L, K, 64), class_ids (B, L, G) hashed ids (-1 pad), label_mask (B, L), drop (B,) -> (B, L, D)"""
        tok = self.set_encoder(profiles)
        if self.class_emb is not None:
            ids = class_ids.clamp(min=0)
            valid = (class_ids >= 0).float()[..., None]
            tok = tok + (self.class_emb(ids) * valid).sum(2) / valid.sum(2).clamp(min=1)
        tok = torch.where(drop[:, None, None], self.null_label.expand_as(tok), tok)
        pos = torch.arange(tok.shape[1], device=tok.device).clamp(max=63)
        return (tok + self.label_pos(pos)) * label_mask[..., None]

    def prefix(self, instr: torch.Tensor, drop_instr: torch.Tensor, labels: torch.Tensor,
               arch_feat: torch.Tensor, arch_act: torch.Tensor | None = None) -> torch.Tensor:
        """instr (B, 384), labels (B, L, D), arch_feat (B, A, 9), arch_act (B,) activation index -> (B, 1 + L + A, D)"""
        i = torch.where(drop_instr[:, None], self.null_instr.expand(instr.shape[0], -1), self.instr_proj(instr))
        a = self.arch_proj(arch_feat) + self.layer_emb(torch.arange(arch_feat.shape[1], device=instr.device)
                                                       .clamp(max=self.cfg.model.max_layers - 1))
        if arch_act is not None and self.cfg.model.compositional:
            a = a + self.arch_act(arch_act)[:, None]
        t = self.type_emb.weight
        return torch.cat([(i + t[0])[:, None], labels + t[1], a + t[2]], 1)

    def encode_conditions(self, cond: dict, head_label: torch.Tensor, base: torch.Tensor | None = None,
                          base_side: torch.Tensor | None = None) -> Conditions:
        """The conditions of a batch -> prefix and what the rows add to their positions.

        cond: `generator.data.condition_batch`'s tensors (a training batch holds them too); head_label (B, R) the
        label index each output row answers for (-1: hidden row); base (B, R, J, Q), base_side (B, R): the base rows
        (base_rows models)."""
        labels = self.label_tokens(cond["profiles"], cond["class_ids"], cond["label_mask"], cond["drop_labels"])
        prefix = self.prefix(cond["instr"], cond["drop_instr"], labels, cond["arch_feat"], cond["arch_act"])
        prefix_mask = torch.cat([torch.ones_like(cond["label_mask"][:, :1]), cond["label_mask"], cond["arch_mask"]], 1)
        head = torch.gather(labels, 1, head_label.clamp(min=0)[..., None].expand(-1, -1, labels.shape[-1]))
        head = head * (head_label >= 0)[..., None]
        base_in = self.base_input(base, base_side) if self.cfg.model.base_rows else None
        return Conditions(prefix, prefix_mask, head, base_in)

    # ---- rows ---------------------------------------------------------------------------------------------
    def row_position(self, rows: dict) -> torch.Tensor:
        """Embedding of where each row sits: rows[...] tensors (B, R) -> (B, R, D)"""
        feat = torch.stack([rows["rel_depth"], rows["fan_in"].float().log2() / 16, rows["fan_out"].float().log2() / 16,
                            rows["chunks"].float() / 64], -1)
        pos = (self.layer_emb(rows["layer_index"].clamp(max=self.cfg.model.max_layers - 1))
               + self.kind_emb(rows["layer_kind"])
               + self.head_emb(rows["is_head"].long())
               + self.row_emb(rows["origin" if self.cfg.model.compositional else "row"] % self.cfg.model.max_row_index)
               + self.row_feat(feat) + self.type_emb.weight[3])
        if self.cfg.model.compositional:
            act = F.one_hot(rows["activation"], len(ACTIVATIONS)).float()
            rel = rows["row"].float() / rows["fan_out"].float()
            to_out = rows["layers_to_out"].float() / 8
            pos = pos + self.comp_feat(torch.cat([act, rel[..., None], to_out[..., None]], -1))
        if self.row_key_emb is not None:
            pos = pos + mean_key(self.row_key_emb, rows["keys"])
        return pos

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., J, Q) with -1 for none -> per-level embeddings (..., J, Q, E), zero where none."""
        q = torch.arange(codes.shape[-1], device=codes.device)
        vec = self.code_emb[q, codes.clamp(min=0)]
        return vec * (codes >= 0)[..., None]

    def _bag(self, table: torch.Tensor, codes: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        """A row's codes (..., J, Q) (-1: no chunk) -> (..., D): `proj` of the mean over the row's chunks of their
        summed per-level embeddings from `table` (Q, V, E) plus the chunk's position. An embedding bag over the
        codes that exist: rows padded to a long neighbour's J (a 784-input layer beside a 9-input one) cost nothing."""
        lead, (jn, q) = codes.shape[:-2], codes.shape[-2:]
        flat = codes.reshape(-1, jn, q)  # (M, J, Q)
        present = flat[..., 0] >= 0  # (M, J)
        m_idx, j_idx = present.nonzero(as_tuple=True)  # row-major: each row's chunks together, rows in order
        v = table.shape[1]
        idx = torch.cat([torch.arange(q, device=codes.device) * v + flat[m_idx, j_idx],  # (N, Q) level codes
                         (q * v + j_idx)[:, None]], 1)  # (N, 1) chunk position
        weight = torch.cat([table.reshape(q * v, -1), self.chunk_emb.weight])
        counts = present.sum(1)  # (M,)
        offsets = torch.cumsum(counts, 0) - counts
        summed = F.embedding_bag(idx.reshape(-1), weight, offsets * (q + 1), mode="sum")  # (M, E); empty rows: 0
        return proj(summed / counts.clamp(min=1)[:, None]).view(*lead, -1)

    def bag(self, codes: torch.Tensor) -> torch.Tensor:
        """A row's codes (..., J, Q) -> one input vector (..., D): mean over chunks of their summed level codes."""
        return self._bag(self.code_emb, codes, self.bag_proj)

    def base_vectors(self, base: torch.Tensor) -> torch.Tensor:
        """Base codes (..., Q), -1 for none -> per-level embeddings (..., Q, E) for the slot head, zero where none."""
        q = torch.arange(base.shape[-1], device=base.device)
        return self.base_code_emb[q, base.clamp(min=0)] * (base >= 0)[..., None]

    def base_input(self, base: torch.Tensor, base_side: torch.Tensor) -> torch.Tensor:
        """What a row position sees of its base row: base (B, R, J, Q) codes (-1 none), base_side (B, R) -> (B, R, D)"""
        has = (base[..., 0] >= 0).any(-1).long()
        bag = self._bag(self.base_code_emb, base, self.base_bag_proj)
        return bag * has[..., None] + self.base_side_emb(base_side) + self.base_flag_emb(has)

    def row_inputs(self, rows: dict, codes: torch.Tensor, head_labels: torch.Tensor) -> torch.Tensor:
        """Inputs of all row positions: position + previous row's codes + (head rows) their label token.

        codes (B, R, J, Q) (the teacher's, shifted here), head_labels (B, R, D) (zero for hidden rows)."""
        prev = self.bag(codes[:, :-1])
        start = self.start_row.expand(codes.shape[0], 1, -1)
        return self.row_position(rows) + torch.cat([start, prev], 1) + head_labels

    # ---- the slot head ------------------------------------------------------------------------------------
    def slot_logits(self, h: torch.Tensor, chunk_j: torch.Tensor, prev_codes: torch.Tensor,
                    base: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every level of a set of chunks.

        h (M, D) hidden state of each chunk's row, chunk_j (M,) chunk index in its row, prev_codes (M, Q) the codes
        of the levels below (teacher forcing; only levels < q are read for level q), base (M, Q) the base row's
        codes of the same chunk (-1 none; with base_rows) -> (M, Q, V)
        """
        start = self.slot_in(h) + self.chunk_emb(chunk_j)  # (M, E)
        lower = self.code_vectors(prev_codes)  # (M, Q, E)
        lower = torch.cumsum(lower, 1) - lower  # exclusive: level q sees levels < q
        x = start[:, None] + self.level_emb[None] + lower
        if base is not None:
            x = x + self.base_vectors(base)
        u = self.slot_mlp(self.slot_norm(x))  # (M, Q, E)
        return torch.einsum("mqe,qev->mqv", u, self.to_logits)

    def level_logits(self, h: torch.Tensor, chunk_j: torch.Tensor, lower_sum: torch.Tensor, q: int,
                     base_q: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of level q only, given the summed embeddings of the levels below (and the base code of level q,
        (M,), -1 none): (M, V). For sampling."""
        x = self.slot_in(h) + self.chunk_emb(chunk_j) + self.level_emb[q] + lower_sum
        if base_q is not None:
            x = x + self.base_code_emb[q, base_q.clamp(min=0)] * (base_q >= 0)[:, None]
        return self.slot_mlp(self.slot_norm(x)) @ self.to_logits[q]

    # ---- training forward -----------------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict:
        """Mean cross-entropy (nats per code) of the batch's codes; see generator/data.py for the batch's keys."""
        b = batch
        c = self.encode_conditions(b, b["head_label"], b.get("base"), b.get("base_side"))  # prefix (B, P, D)
        row_in = self.row_inputs(b["rows"], b["codes"], c.head_labels)
        if c.base_input is not None:
            row_in = row_in + c.base_input
        x = torch.cat([c.prefix, row_in], 1)
        mask = torch.cat([c.prefix_mask, b["row_mask"]], 1).bool()
        h = self.decoder(x, mask=mask)[:, c.prefix.shape[1]:]  # (B, R, D)
        valid = b["codes"][..., 0] >= 0  # (B, R, J) chunks that exist
        bi, ri, ji = valid.nonzero(as_tuple=True)
        weighted = self.cfg.train.head_loss_weight != 1.0
        if weighted:  # every output-row chunk, then a random subset of the hidden rows' chunks
            head = b["rows"]["is_head"][bi, ri]
            heads, hidden = head.nonzero(as_tuple=True)[0], (~head).nonzero(as_tuple=True)[0]
            if self.training:
                hidden = hidden[torch.randperm(len(hidden))[: max(0, self.cfg.train.loss_chunks - len(heads))]]
            keep = torch.cat([heads, hidden])
            bi, ri, ji = bi[keep], ri[keep], ji[keep]
        elif self.training and len(bi) > self.cfg.train.loss_chunks:  # an unbiased subset of the batch's chunks
            keep = torch.randperm(len(bi))[: self.cfg.train.loss_chunks]
            bi, ri, ji = bi[keep], ri[keep], ji[keep]
        target = b["codes"][bi, ri, ji]  # (M, Q)
        logits = self.slot_logits(h[bi, ri], ji, target, b["base"][bi, ri, ji] if self.cfg.model.base_rows else None)
        if weighted:
            w = torch.ones(len(keep), device=logits.device)
            w[: len(heads)] = self.cfg.train.head_loss_weight  # the output-row chunks come first
            per = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(target.shape)
            loss = (per.mean(-1) * w).sum() / w.sum()
        else:
            loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        out = {"code_loss": loss, "codes": target.numel()}
        if self.side_head is not None:
            rows = b["rows"]
            first = (rows["row"] == 0) & b["row_mask"].bool()
            bi, ri = first.nonzero(as_tuple=True)
            side = b["side"][bi, rows["layer_index"][bi, ri]]
            out["side_loss"] = F.cross_entropy(self.side_head(h[bi, ri]), side + SIDE_OFFSET)
            loss = loss + 0.1 * out["side_loss"]
        out["loss"] = loss
        return out
