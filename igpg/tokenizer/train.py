"""Train a weight tokenizer on a zoo's training split; resumable checkpoint directory; JSON-lines metrics.

    train_tokenizer(zoo_dir, cfg, out_dir)    # out_dir/{config.json, model.safetensors, training_state/, metrics.jsonl}

Only networks whose task, architecture and seed are all in the training split are read (plus the generic networks
of training architectures): held-out networks stay held out.

Under torchrun the processes train one VQ-VAE with DistributedDataParallel (codebooks kept in sync by
vector-quantize-pytorch), each on its share of every global batch; rank 0 writes checkpoints and metrics (see
`igpg/distributed.py`). Without torchrun, nothing changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from igpg import distributed
from igpg.checkpoint import load_model_state, load_training_state, read_config, save_checkpoint, truncate_metrics
from igpg.errors import IgpgError
from igpg.io import load_weights
from igpg.metrics import MetricsLog
from igpg.tokenizer.chunking import chunk_network
from igpg.tokenizer.model import TokenizerConfig
from igpg.tokenizer.tokenizer import KIND, WeightTokenizer, config_from_dict
from igpg.zoo.catalogue import Catalogue

# the zoo's training networks: task and generic networks of training tasks, architectures and seeds (probe networks,
# role "probe", are a generator's option, see `TrainConfig.probe_targets` of igpg/generator/config.py)
_TRAINING = "n.seed_split='train' AND t.split='train' AND a.split='train'"
TRAIN_SPLIT = f"{_TRAINING} AND n.role IN ('task', 'generic')"
PROBES = f"{_TRAINING} AND n.role='probe'"


@dataclass
class ChunkSet:
    """Every chunk of a set of networks, stacked: values (M, C), pos (M, F), mask (M, C); owner (M,) row index."""

    values: torch.Tensor
    pos: torch.Tensor
    mask: torch.Tensor
    owner: torch.Tensor
    rows: list[dict]


def gather_chunks(zoo: Catalogue, rows: list[dict], cfg: TokenizerConfig) -> ChunkSet:
    vals, pos, mask, owner = [], [], [], []
    for i, r in enumerate(rows):
        state, _ = load_weights(zoo.root / r["file"])
        ch = chunk_network(state, r["arch"], cfg.model.chunk_size, cfg.model.normalisation)
        vals.append(ch.values)
        pos.append(ch.layout.position_features())
        mask.append(ch.layout.mask())
        owner.append(torch.full((len(ch.values),), i, dtype=torch.int64))
    if not vals:
        raise IgpgError(f"zoo {zoo.root} has no networks in the selected split")
    return ChunkSet(torch.cat(vals), torch.cat(pos), torch.cat(mask).float(), torch.cat(owner), rows)


def training_rows(zoo: Catalogue) -> list[dict]:
    return zoo.rows(TRAIN_SPLIT)


def train_tokenizer(zoo_dir: str | Path, cfg: TokenizerConfig, out: str | Path,
                    progress: Callable[..., None] | None = None, stop_after: int | None = None,
                    device: str | torch.device = "auto") -> WeightTokenizer:
    """Train (or resume, if `out` holds a checkpoint of the same config) and return the tokenizer, on `device`
    (auto: cuda, else mps, else cpu; under torchrun, one GPU per process when CUDA is there unless device is cpu).
    `progress(phase, step, steps, loss=...)` is called after each step.

    `stop_after` ends the run after that many steps of this call (for tests of resume); the schedule is unchanged.
    """
    out = Path(out)
    zoo = Catalogue(zoo_dir)
    ctx = distributed.init_from_env(device=device)  # before the model: its quantiser syncs codebooks when distributed
    torch.manual_seed(cfg.train.seed)  # the initial weights; a resumed run loads its weights and RNG state instead
    tok = WeightTokenizer(cfg)
    cfg = tok.cfg
    model = tok.model.to(ctx.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    step = 0
    if (out / "config.json").exists():
        saved = config_from_dict(read_config(out, KIND))
        if saved != cfg:
            raise IgpgError(f"{out} holds a tokenizer trained with another config; use a new --out to start over")
        load_model_state(out, model)
        step = load_training_state(out, opt, writer=ctx.is_main)["step"]
    if ctx.is_main:
        truncate_metrics(out / "metrics.jsonl", step)  # a fresh start too: a run killed before its first checkpoint
    data = gather_chunks(zoo, training_rows(zoo), cfg)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(out, step)
    distributed.check_same(step, "the step to resume from", ctx)  # also: no rank replaces it before all read it
    ddp = distributed.wrap(model, ctx)
    model.train()
    t0, done_here = time.perf_counter(), 0
    while step < cfg.train.steps and (stop_after is None or done_here < stop_after):
        # batches come from the global torch RNG, which checkpoints save and restore: a resumed run continues
        # with exactly the batches an uninterrupted one would have drawn
        if ctx.distributed:  # the same global batch on every rank (seeded by step), each rank keeps its share
            seed = distributed.step_seed(cfg.train.seed, step, -1)
            idx = torch.randint(len(data.values), (cfg.train.batch_size,), generator=torch.Generator().manual_seed(seed))
            idx = idx[distributed.shard_indices(len(idx), ctx)]
            # in-step draws (k-means, re-seeding)
            torch.manual_seed(distributed.step_seed(cfg.train.seed, step, ctx.rank))
        else:
            idx = torch.randint(len(data.values), (cfg.train.batch_size,))
        batch = distributed.to_device((data.values[idx], data.pos[idx], data.mask[idx]), ctx.device)
        _, codes, losses = ddp(*batch)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        step += 1
        done_here += 1
        if step % cfg.train.log_every == 0 or step == cfg.train.steps:
            usage = codes.unique().numel() / cfg.model.vocab_size
            mean = lambda v: distributed.mean_over_ranks(v, ctx)  # noqa: E731 (the value itself on one process)
            rec = {"step": step, "loss": mean(losses["loss"].item()), "recon": mean(losses["recon"].item()),
                   "aux": mean(losses["aux"].item()), "code_usage_batch": mean(usage),
                   "seconds": time.perf_counter() - t0}
            if ctx.is_main:
                metrics.write(rec)
        if progress:
            progress("tokenizer steps", step, cfg.train.steps, loss=losses["loss"].item())
        if ctx.is_main and (step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps):
            save_checkpoint(out, KIND, cfg, model, opt, step)
    if ctx.is_main and step % cfg.train.checkpoint_every and step != cfg.train.steps:
        save_checkpoint(out, KIND, cfg, model, opt, step)
    if ctx.is_main:
        metrics.close()
    distributed.barrier()  # no rank leaves before the last checkpoint is on disk
    model.eval()
    zoo.close()
    return tok

