"""Train the generator on a zoo's training networks, from codes the tokenizer extracted once.

    train_generator(zoo_dir, tokenizer_dir, cfg, out_dir)   # resumable checkpoint directory + metrics.jsonl

Held-out tasks, architectures and seeds never enter training: examples are the zoo rows whose task, architecture
and seed splits are all "train", and only the training phrasings of each task are used.

The output directory is a generator directory `ParameterGenerator.from_pretrained` loads as is: the checkpoint,
a copy of the tokenizer (OUT/tokenizer/) and the generic networks (OUT/generic/, base_rows models), beside
metrics.jsonl (and OUT/tensorboard/ when tensorboard is installed).

Without torchrun, training runs in this process on `device` (auto: cuda, else mps, else cpu). Under torchrun
(`torchrun --nproc-per-node N -m igpg.cli train generator ...`) the N processes train one model with
DistributedDataParallel, each on its share of every global batch (one GPU per process when CUDA is there, unless
device is cpu); rank 0 writes checkpoints and metrics (see `igpg/distributed.py`).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Callable

import torch

from igpg import distributed
from igpg.checkpoint import (
    load_model_state,
    load_training_state,
    read_config,
    save_checkpoint,
    truncate_metrics,
)
from igpg.data import Task
from igpg.errors import IgpgError
from igpg.generator.base_rows import GENERIC_DIR, GenericBank, encode_base
from igpg.generator.conditions import support_set
from igpg.generator.data import Example, ExampleSampler, rows_tensor
from igpg.generator.config import CodeFormat, GeneratorConfig
from igpg.generator.model import WeightGenerator
from igpg.generator.model_dir import KIND, TOKENIZER_DIR, config_from_dict
from igpg.generator.rows import row_layout
from igpg.metrics import MetricsLog
from igpg.tokenizer.codes import load_codes
from igpg.tokenizer.tokenizer import WeightTokenizer
from igpg.tokenizer.train import PROBES, TRAIN_SPLIT
from igpg.zoo.catalogue import Catalogue



def select_probes(rows: list, probes: list, zoo_dir) -> list:
    """`rows` with each task network replaced by its probe twin (same task, architecture and seed) in `probes`."""
    if not probes:
        raise IgpgError(f"probe_targets: zoo {zoo_dir} has no probe networks of training tasks; build it with "
                        "`probes: grouped` (or all) in its config")
    twin = {(p["task_id"], p["arch"], p["seed"]): p for p in probes}
    return [twin.get((r["task_id"], r["arch"], r["seed"]), r) if r["role"] == "task" else r for r in rows]


def load_examples(zoo_dir: str | Path, codes_dir: str | Path, cfg: GeneratorConfig, where: str = TRAIN_SPLIT,
                  tokenizer: WeightTokenizer | None = None, bank: GenericBank | None = None) -> list[Example]:
    """The training networks as examples; with `cfg.model.base_rows`, each with its base row codes (encoded once per
    architecture, dataset and labels with `tokenizer` from the generic networks in `bank`)."""
    zoo = Catalogue(zoo_dir)
    try:
        rows = zoo.rows(where)
        if cfg.train.probe_targets:
            rows = select_probes(rows, zoo.rows(PROBES), zoo_dir)
    finally:
        zoo.close()
    known = {r["dataset"] for r in rows}
    for d in cfg.train.exclude_datasets:
        if not isinstance(d, str) or d not in known:
            raise IgpgError(f"exclude_datasets: {d!r} is not a dataset of zoo {zoo_dir}; its datasets: "
                            f"{', '.join(sorted(known))}")
    rows = [r for r in rows if r["dataset"] not in cfg.train.exclude_datasets]
    if cfg.model.base_rows and (tokenizer is None or bank is None):
        raise ValueError("base rows need the tokenizer and the generic networks")  # a programming error
    codes = load_codes(codes_dir)
    bases: dict[tuple, tuple | None] = {}
    out = []
    for r in rows:
        if r["net_id"] not in codes:
            raise IgpgError(f"codes of network {r['net_id']} are missing from {codes_dir}: extract them again")
        c = codes[r["net_id"]]
        lay = row_layout(r["arch"], cfg.codes.chunk_size, cfg.codes.codes_per_chunk)
        task = Task.from_classes(r["dataset"], r["labels"])
        base = None
        if cfg.model.base_rows:
            key = (r["arch"], r["dataset"], json.dumps(r["labels"]))
            if key not in bases:
                bases[key] = encode_base(tokenizer, bank, r["arch"], r["dataset"], r["labels"], cfg.codes.chunk_size,
                                         cfg.codes.codes_per_chunk)
            base = bases[key]
        siblings = []
        if cfg.model.base_rows and cfg.train.sibling_bases > 0 and r["role"] != "generic":
            for src_key, plan in bank.siblings(r["arch"], r["dataset"]):
                skey = (*key, src_key)
                if skey not in bases:  # calibrated on a support draw, as a request's base is (transform.py)
                    x, _ = support_set(task, cfg.model.k_support, seed=len(bases))
                    carried = bank.carried(src_key, plan, r["dataset"], r["labels"], calibrate=x)
                    bases[skey] = encode_base(tokenizer, bank, r["arch"], r["dataset"], r["labels"], cfg.codes.chunk_size,
                                              cfg.codes.codes_per_chunk, carried)
                siblings.append(bases[skey])
        out.append(Example(r["net_id"], task, r["arch"], rows_tensor(c.indices, lay), c.side, list(r["instructions"]),
                           base, siblings))
    if not out:
        raise IgpgError(f"zoo {zoo_dir} has no training networks")
    return out


def _lr(step: int, cfg: GeneratorConfig) -> float:
    if step < cfg.train.warmup:
        return cfg.train.lr * (step + 1) / cfg.train.warmup
    t = (step - cfg.train.warmup) / max(1, cfg.train.steps - cfg.train.warmup)
    return cfg.train.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train_generator(zoo_dir: str | Path, tokenizer_dir: str | Path, cfg: GeneratorConfig, out: str | Path,
                    progress: Callable[..., None] | None = None, stop_after: int | None = None,
                    device: str | torch.device = "auto") -> WeightGenerator:
    """Train (or resume) the generator into `out`; `progress(phase, step, steps, loss=...)` after each step."""
    out = Path(out)
    tokenizer_dir = Path(tokenizer_dir)
    ctx = distributed.init_from_env(device=device)
    tok = WeightTokenizer.load(tokenizer_dir)
    cfg = cfg.model_copy(update={"codes": CodeFormat.of(tok, tokenizer_dir.name)})  # the tokenizer decides these
    bank = GenericBank.from_zoo(zoo_dir, cfg.train.exclude_datasets) if cfg.model.base_rows else None
    examples = load_examples(zoo_dir, tokenizer_dir / "codes", cfg, tokenizer=tok, bank=bank)
    torch.manual_seed(cfg.train.seed)
    model = WeightGenerator(cfg).to(ctx.device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "emb" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.95))
    rng = random.Random(cfg.train.seed)
    step = 0
    if (out / "config.json").exists():
        saved = config_from_dict(read_config(out, KIND))
        # the same config, or the same with more steps (extending a finished run: the schedule is stretched)
        if saved.override({"train.steps": cfg.train.steps}) != cfg or cfg.train.steps < saved.train.steps:
            raise IgpgError(f"{out} holds a generator trained with another config; use a new --out to start over")
        load_model_state(out, model)
        state = load_training_state(out, opt, writer=ctx.is_main)
        step = state["step"]
        if "python_rng" in state:
            v, s, g = state["python_rng"]
            rng.setstate((v, tuple(s), g))
    if ctx.is_main:
        truncate_metrics(out / "metrics.jsonl", step)  # a fresh start too: a run killed before its first checkpoint
    sampler = ExampleSampler(examples, cfg)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if bank is not None and not (out / GENERIC_DIR).is_dir():  # the bases travel with the checkpoint
            bank.save(out / GENERIC_DIR)
        if not (out / TOKENIZER_DIR).is_dir():  # and so does the tokenizer: `igpg generate --model OUT` needs no other
            tok.save(out / TOKENIZER_DIR)
        metrics = MetricsLog(out, step)
    distributed.check_same(step, "the step to resume from", ctx)  # also: no rank replaces it before all read it
    ddp = distributed.wrap(model, ctx)
    model.train()
    t0, done_here, losses, shown = time.perf_counter(), 0, [], None
    while step < cfg.train.steps and (stop_after is None or done_here < stop_after):
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        if ctx.distributed:
            torch.manual_seed(distributed.step_seed(cfg.train.seed, step, ctx.rank))  # in-step noise, resumable
        batch = sampler.batch(rng)  # the global batch: the same on every rank (one RNG, saved with the checkpoint)
        batch = distributed.to_device(distributed.shard_batch(batch, ctx), ctx.device)
        res = ddp(batch)
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        done_here += 1
        losses.append(res["code_loss"].item())
        if step % cfg.train.log_every == 0 or step == cfg.train.steps:
            code_loss = distributed.mean_over_ranks(sum(losses) / len(losses), ctx)
            rec = {"step": step, "code_loss": code_loss, "lr": _lr(step - 1, cfg), "seconds": time.perf_counter() - t0}
            losses, shown = [], code_loss
            if ctx.is_main:
                metrics.write(rec)
        if progress:
            progress("generator steps", step, cfg.train.steps, loss=shown if shown is not None else losses[-1])
        if ctx.is_main and (step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps):
            save_checkpoint(out, KIND, cfg, model, opt, step, {"python_rng": rng.getstate()})
    if ctx.is_main and step % cfg.train.checkpoint_every and step != cfg.train.steps:
        save_checkpoint(out, KIND, cfg, model, opt, step, {"python_rng": rng.getstate()})
    if ctx.is_main:
        metrics.close()
    distributed.barrier()  # no rank leaves before the last checkpoint is on disk
    model.eval()
    return model

