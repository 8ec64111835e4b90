"""`ParameterGenerator`: the user-facing generator (tokenizer + decoder), offline.

    gen = igpg.ParameterGenerator.from_pretrained()          # the released default (shipped inside the package)
    net = gen.generate("Classify handwritten digits 3, 5 and 8", dataset="digits", classes=[3, 5, 8],
                       arch="mlp:64-32-3", samples=1, seed=0)
    net = gen.generate("Is it a three or an eight?", dataset="digits", arch="mlp:64-32-2")  # labels read: [3, 8]
    net = gen.generate_from_support("Gun or point?", "my_samples.csv", arch="mlp:40-64-2")  # your own samples
    gen.save_pretrained("my-gen")                             # a folder that holds everything it needs
    gen = igpg.ParameterGenerator.from_pretrained("my-gen", device="cuda")

A generator directory (what `igpg train generator` writes and `save_pretrained` writes):

    DIR/config.json, DIR/model.safetensors   the decoder
    DIR/tokenizer/                           the weight tokenizer it was trained with (config.json, model.safetensors)
    DIR/generic/                             the generic networks its requests start from (base_rows models)
    DIR/CARD.md                              what it is and how it measures (released models)

A base_rows generator (the released default) starts every request from the generic network of its hidden layers
and dataset, shipped in the model directory's generic/ (generator/base_rows.py); `net.igpg_base` says whether one was
found (without one the network is decoded from the conditions alone, near chance for the released default).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from igpg.arch import ArchSpec
from igpg.checkpoint import check_model_size, load_model_state, read_config
from igpg.coverage import KIND_TEXT, arch_kind
from igpg.checkpoint import save_model
from igpg.data import Task, describe_labels, labels_from_instruction, load_dataset, using_data_root
from igpg.device import resolve_device
from igpg.errors import IgpgError
from igpg.evaluation.accuracy import accuracy
from igpg.export import MAX_SEED
from igpg.generator.budget import Budget
from igpg.generator.config import CodeFormat
from igpg.generator.base_rows import GENERIC_DIR, GenericBank, encode_base
from igpg.generator.conditions import sample_profile, support_set
from igpg.generator.model import WeightGenerator
from igpg.generator.model_dir import KIND, TOKENIZER_DIR, config_from_dict
from igpg.generator.sample import SamplingConfig, sample_codes, sampling_config
from igpg.generator.support_rows import same_input_sources, support_network
from igpg.text import check_instruction, embed_texts
from igpg.tokenizer.chunking import _chunks_per_row
from igpg.tokenizer.tokenizer import Codes, WeightTokenizer

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "pretrained" / "default"  # package data: in the wheel too
CARD = "CARD.md"
DEFAULT_ZOO = Path("zoos") / "default"  # relative to the working directory: where `train/default.sh` builds it


@dataclass(frozen=True)
class Request:
    instruction: str
    task: Task
    spec: ArchSpec
    seed: int = 0
    labels_from: str = "classes"  # or "instruction": no classes were given, the labels were read from it


@dataclass
class Candidate:
    net: nn.Module
    support_acc: float
    seed: int
    source: str = "generated"  # or the base's origin: "mlp:64-32-10 carried over (widen layer 0 32->48)"


Progress = Callable[[str, int, int], None]  # (phase, done, total)


class ParameterGenerator:
    def __init__(self, model: WeightGenerator, tokenizer: WeightTokenizer, name: str = "generator",
                 bank: GenericBank | None = None, device: str | torch.device = "cpu"):
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.cfg = model.cfg
        self.device = torch.device("cpu")
        self.to(device)  # the decoder runs there; the tokenizer and the returned networks stay on the CPU
        self.card: str | None = None  # the model card (CARD.md) it was loaded with, carried by save_pretrained
        # base_rows models: the generic networks whose rows a request starts from (none: decode without a base)
        self.bank = bank if bank is not None else GenericBank()
        self._bases: dict[tuple, tuple | None] = {}  # encoded bases by (arch, dataset, labels): best-of-K reuses them
        self.budget = Budget()  # requests above max_params / max_memory are refused before decoding (budget.py)

    # ---- loading -------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, tokenizer: str | Path | None = None,
                        device: str | torch.device = "auto") -> "ParameterGenerator":
        """Load a generator directory (default: the released model shipped inside the igpg package) onto `device`
        (auto: cuda, else mps, else cpu).

        The tokenizer is the directory's own copy (`path/tokenizer/`, which `igpg train generator` and
        `save_pretrained` write), or `tokenizer` if given (for a directory that lacks one)."""
        path = Path(path) if path is not None else DEFAULT_MODEL
        cfg = config_from_dict(read_config(path, KIND))
        check_model_size(path, lambda: WeightGenerator(cfg))  # before allocating what the config says
        device = resolve_device(device)  # an absent device is refused before the weights are read
        model = WeightGenerator(cfg)
        load_model_state(path, model)
        name = cfg.codes.tokenizer  # the tokenizer's name, recorded; never a path (a config must not point anywhere)
        if name and (name.startswith(".") or "/" in name or "\\" in name or not name.isprintable()):
            raise IgpgError(f"checkpoint {path}: tokenizer {name[:60]!r} is not a tokenizer name (a path, or not "
                            "printable)")
        if tokenizer is None:
            tokenizer = path / TOKENIZER_DIR
            if not tokenizer.is_dir():
                raise IgpgError(f"generator {path} holds no tokenizer ({TOKENIZER_DIR}/ is missing); pass the one it "
                                f"was trained with (--tokenizer DIR), or re-save it with save_pretrained")
        tok = WeightTokenizer.load(tokenizer)
        # the code format the model was built for, recorded in config.json, must be the tokenizer's own
        if CodeFormat.of(tok, cfg.codes.tokenizer) != cfg.codes:
            raise IgpgError(f"tokenizer {tokenizer} does not match generator {path} (codebook, codes per chunk, "
                            f"chunk size or normalisation)")
        digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:12]
        bank = GenericBank.load(path / GENERIC_DIR) if cfg.model.base_rows else None
        gen = cls(model, tok, f"{path.name}@{digest}", bank, device)
        gen.card = (path / CARD).read_text() if (path / CARD).is_file() else None
        return gen

    def save_pretrained(self, path: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write a generator directory that `from_pretrained(path)` loads on any machine, alone: config, weights
        (in `dtype` if given: torch.float16 halves the file, loaded back into float32 parameters), its tokenizer,
        its generic networks, and its card. Other files already in `path` are left alone."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise IgpgError(f"{path} is a file, not a directory")
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        save_model(path, KIND, self.cfg, state)
        self.tokenizer.save(path / TOKENIZER_DIR)
        if self.cfg.model.base_rows:
            self.bank.save(path / GENERIC_DIR)
        if self.card is not None and not (path / CARD).exists():
            (path / CARD).write_text(self.card)
        return path

    def to(self, device: str | torch.device) -> "ParameterGenerator":
        """Run the decoder on `device` (auto | cpu | cuda | mps | cuda:N)."""
        self.device = resolve_device(device)
        self.model.to(self.device)
        return self

    def base_of(self, task: Task, spec: ArchSpec, support_x: torch.Tensor | None = None):
        """The request's base rows (a base_rows model with a generic network it can be carried from; a lossy
        carry-over is calibrated on the support samples `support_x`), else None."""
        if not self.cfg.model.base_rows:
            return None
        key = (spec, task.dataset, task.labels, None if support_x is None else hash(support_x.numpy().tobytes()))
        if key not in self._bases:
            codes = self.cfg.codes
            self._bases[key] = encode_base(self.tokenizer, self.bank, spec, task.dataset, task.labels,
                                           codes.chunk_size, codes.codes_per_chunk, calibrate=support_x)
        return self._bases[key]

    # ---- coverage ------------------------------------------------------------------------------------------
    def trained_on(self) -> set[tuple[str, str]]:
        """(architecture with all classes, dataset) pairs this generator trained on (its generic networks)."""
        return {tuple(key.rsplit("@", 1)) for key in self.bank.states}

    def coverage_note(self, arch: ArchSpec | str, dataset: str) -> str | None:
        """None for an architecture this generator trained on; else one line: where the request sits against what it
        learned, and the base it starts from (carried over from which network, how) or that it has none."""
        spec = ArchSpec.parse(arch)
        trained = self.trained_on()
        kind = arch_kind(str(spec), dataset, trained)
        if kind == "trained" or not self.cfg.model.base_rows:
            return None
        found = self.bank.source(spec, dataset)
        borrowed = same_input_sources(self.bank, spec, load_dataset(dataset).input_shape, exclude=dataset) \
            if found is None else []
        if borrowed:
            start = (f"it borrows the hidden layers of {borrowed[0][0]} (same input) with output rows fitted to the "
                     "support samples (support rows: above chance, below training on them; eval/results/support.md)")
        elif found is None:
            start = "no base can be carried over to it, so it is decoded from the conditions alone: expect near-chance accuracy"
        else:
            key, plan = found
            how = "exact" if plan.exact else "lossy, calibrated on the support samples"
            start = f"it starts from {key.rsplit('@', 1)[0]} carried over ({'; '.join(plan.steps)}: {how})"
        return (f"{spec} on {dataset} is not an architecture this generator trained on ({KIND_TEXT[kind]}); {start}. "
                "What it trained on: `igpg info`.")

    # ---- validation ----------------------------------------------------------------------------------------
    def check_request(self, instruction: str, dataset: str, classes=None, arch: ArchSpec | str | None = None,
                      seed: int = 0, data_root: str | Path | None = None) -> Request:
        """The request, checked (one-line `IgpgError`s); `data_root`: where a torchvision:<Name> dataset's files are.
        `classes=None`: the labels are read from the instruction (`labels_from_instruction`; refused when they cannot
        be read unambiguously). The architecture is parsed here, once: from here on it travels as `Request.spec`."""
        instruction = check_instruction(instruction)
        root = None if data_root is None else str(data_root)
        if classes is None:
            task = Task(dataset, labels_from_instruction(instruction, load_dataset(dataset, root)), instruction)
        else:
            task = Task.from_classes(dataset, classes, instruction)
        if arch is None:
            raise IgpgError("no architecture given; pass one, e.g. arch='mlp:64-32-3'")
        spec = ArchSpec.parse(arch)
        ds = load_dataset(dataset, root)
        try:
            spec.check_compatible(ds.input_shape, task.num_labels)
        except IgpgError as e:
            if classes is not None:
                raise
            raise IgpgError(f"{e} (labels read from the instruction: {describe_labels(task.labels, ds)})") from None
        cfg = self.cfg
        if spec.family not in cfg.model.families:
            raise IgpgError(f"this generator supports families {', '.join(cfg.model.families)}, not {spec.family!r}")
        if spec.depth > cfg.model.max_depth.get(spec.family, 8):
            raise IgpgError(f"this generator supports {spec.family} depth 1..{cfg.model.max_depth[spec.family]}, got {spec.depth}")
        if task.num_labels > 64:
            raise IgpgError(f"this generator supports at most 64 output labels, got {task.num_labels}")
        # arithmetic over the schema, not row_layout: the layout of a huge architecture would not fit in memory
        if max(_chunks_per_row(layer, cfg.codes.chunk_size) for layer in spec.schema()) > cfg.model.max_chunks_per_row:
            limit = cfg.model.max_chunks_per_row * cfg.codes.chunk_size - 1
            fan_in = max(layer.fan_in for layer in spec.schema())
            raise IgpgError(f"{spec}: a layer has fan-in {fan_in}; this generator supports fan-in up to {limit}")
        self.budget.check(spec, cfg.codes.chunk_size, cfg.codes.codes_per_chunk)  # before anything is allocated
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
            big = isinstance(seed, int) and seed.bit_length() > 100  # str() of a huge int raises
            raise IgpgError(f"seed must be an integer in 0..{MAX_SEED}, got "
                            f"{f'an integer of {seed.bit_length()} bits' if big else repr(seed)[:40]}")
        return Request(instruction, task, spec, seed, "classes" if classes is not None else "instruction")

    # ---- generation ----------------------------------------------------------------------------------------
    def _decode(self, requests: list[Request], sc: SamplingConfig, k: int, seeds: list[int],
                rows: Callable[[int, int], None] | None = None) -> list[Candidate]:
        """One batch of requests of the same architecture -> networks, scored on their support samples.
        `rows(done, total)` is called after each decoded row."""
        spec = requests[0].spec  # parsed once, by check_request
        profiles, support = [], []
        for r, s in zip(requests, seeds):
            x, y = support_set(r.task, k, seed=r.seed)
            support.append((x, y))
            profiles.append(sample_profile(x, load_dataset(r.task.dataset).input_shape)
                            .view(r.task.num_labels, k, -1))
        instr = embed_texts([r.instruction for r in requests], device=self.device)
        books = self.tokenizer.codebooks() if sc.mean_from is not None else None
        bases = [self.base_of(r.task, spec, x) if sc.use_base else None for r, (x, _) in zip(requests, support)]
        dec = sample_codes(self.model, [r.task for r in requests], spec, profiles, instr, sc, seed=seeds[0],
                           codebooks=books, bases=bases, progress=rows)
        if dec.latents is None:
            states = [self.tokenizer.decode(Codes(str(spec), c, sd)) for c, sd in zip(dec.codes, dec.side)]
        else:
            states = [self.tokenizer.decode_latents(z, spec, sd) for z, sd in zip(dec.latents, dec.side)]
        out = []
        for r, state, (x, y), s, base in zip(requests, states, support, seeds, bases):
            net = r.spec.load(state)
            net.igpg_base = base is not None  # decoded from a generic network's rows (base_rows models)
            out.append(Candidate(net, accuracy(net, x, y), s))
        return out

    def _decode_fitting(self, requests: list[Request], sc: SamplingConfig, k: int, seeds: list[int],
                        rows: Callable[[int, int], None] | None = None) -> list[Candidate]:
        """`_decode` in as many calls as the memory budget needs (requests of one architecture)."""
        n = self.budget.batch_size(requests[0].spec, self.cfg.codes.chunk_size, self.cfg.codes.codes_per_chunk,
                                   sc.guidance != 1.0)
        out: list[Candidate] = []
        for i in range(0, len(requests), n):
            out += self._decode(requests[i : i + n], sc, k, seeds[i : i + n], rows)
        return out

    def generate(self, instruction: str, dataset: str, classes=None, arch: ArchSpec | str | None = None, seed: int = 0,
                 sampling: SamplingConfig | None = None, data_root: str | Path | None = None,
                 progress: Progress | None = None, **overrides) -> nn.Module:
        """A network for the task, ready to use, decoded as `sampling` says (default `SamplingConfig()`: one greedy
        network); `overrides` are SamplingConfig fields (`samples=8, temperature=0.7`) replaced in it.

        With samples=K, one network is decoded at `temperature` (0 = greedy) and K-1 more are sampled (at
        `temperature`, or 0.5 if it is 0); the one scoring best on the support samples is returned (the first on
        ties). With `base_candidate` (a base_rows model), the request's base itself (float weights, see
        `base_candidate`) competes too and wins ties: the decoder must do better on the support samples than the
        network it starts from (`net.igpg_metadata["igpg.source"]` says which was picked).
        `classes=None` reads the labels from the instruction (`igpg.data.labels_from_instruction`); the metadata
        then says so (`igpg.labels_from`). `data_root`: the folder of a torchvision:<Name> dataset.
        `progress(phase, done, total)` is called with phase "candidates" after each decoding pass and "rows" after
        each decoded row."""
        sc = sampling_config(sampling, **overrides)
        with using_data_root(data_root):
            req = self.check_request(instruction, dataset, classes, arch, seed)
            return self._best([req], sc, progress)[0]

    def _best(self, reqs: list[Request], sc: SamplingConfig, progress: Progress | None) -> list[nn.Module]:
        """Best-of-`sc.samples` for each request (all of one architecture): one pass decodes every request at
        sc.temperature, a second one samples K-1 more of each; the request's base competes and wins ties."""
        if sc.guidance != 1.0:  # guidance decodes every network twice (with and without the conditions)
            for req in reqs:
                self.budget.check(req.spec, self.cfg.codes.chunk_size, self.cfg.codes.codes_per_chunk, guided=True)
        k = self.cfg.model.k_support if sc.k is None else sc.k
        samples = sc.samples
        total = len(reqs) * samples
        rows = None if progress is None else (lambda done, n: progress("rows", done, n))
        if progress is not None:
            progress("candidates", 0, total)
        cands = [[c] for c in self._decode_fitting(reqs, sc, k, [r.seed for r in reqs], rows)]
        if progress is not None:
            progress("candidates", len(reqs), total)
        if samples > 1:  # the other K-1 are sampled (at 0.5 when greedy was asked for the first)
            more = [r for r in reqs for _ in range(samples - 1)]
            temp = sc.temperature if sc.temperature > 0 else 0.5
            sampled = self._decode_fitting(more, dataclasses.replace(sc, temperature=temp), k,
                                           [r.seed + 1 for r in more], rows)
            for i, group in enumerate(cands):
                group += sampled[i * (samples - 1):(i + 1) * (samples - 1)]
            if progress is not None:
                progress("candidates", total, total)
        out = []
        for req, group in zip(reqs, cands):
            decoded = max(group, key=lambda c: c.support_acc)  # first best on ties
            best = decoded
            base = self.base_candidate(req, k) if sc.base_candidate and sc.use_base else None
            if base is not None and base.support_acc >= decoded.support_acc:  # ties go to the base (README: measured)
                best = base
            self._annotate(best.net, req, samples)
            best.net.igpg_support_acc = best.support_acc
            # the best decoded candidate, whichever was picked (for evaluation); a plain attribute, not a submodule
            # (the returned network's state_dict stays its own)
            best.net.__dict__["igpg_decoded"] = decoded.net
            if best is base:
                best.net.igpg_metadata["igpg.source"] = f"base:{base.source}"
            out.append(best.net)
        return out

    def base_candidate(self, req: Request, k: int) -> Candidate | None:
        """The request's base as a network (float weights: the generic network of its architecture with rows
        selected, or the nearest one's carried over and calibrated on the support samples), scored on the support
        samples; None without a base."""
        if not self.cfg.model.base_rows:
            return None
        found = self.bank.source(req.spec, req.task.dataset)
        x, y = support_set(req.task, k, seed=req.seed)
        if found is None:  # no generic network of this dataset: support rows on one that takes the same input
            made = support_network(self.bank, req.spec, x, y, req.task.labels,
                                   load_dataset(req.task.dataset).input_shape, exclude=req.task.dataset)
            if made is None:
                return None
            net, source = made
            net.igpg_base = True
            return Candidate(net, accuracy(net, x, y), req.seed, source)
        state, _ = self.bank.carried(*found, req.task.dataset, req.task.labels, calibrate=x)
        net = req.spec.load(state)
        net.igpg_base = True
        key, plan = found
        source = key.rsplit("@", 1)[0] + (f" carried over ({'; '.join(plan.steps)})" if plan.steps else "")
        return Candidate(net, accuracy(net, x, y), req.seed, source)

    def generate_from_support(self, instruction: str, support, arch: ArchSpec | str, classes=None,
                              seed: int = 0) -> nn.Module:
        """A network for the user's own labelled samples (`support`: a `igpg.data.Support` or the path of a CSV / NPZ
        file, read by `igpg.data.load_support`), for data no generic network was trained on: the hidden layers of
        the nearest generic network taking the same input, output rows fitted to every support sample
        (`generator/support_rows.py`; no decoding, no gradient step). Output i is label i of the support set (sorted,
        or as `classes` picks and orders them). The instruction and `seed` are recorded, not used (nothing is drawn). `net.igpg_support_acc` is the
        accuracy on the support samples themselves (a fit, not a held-out estimate)."""
        from igpg.data.support import Support, load_support

        instruction = check_instruction(instruction)
        if arch is None:
            raise IgpgError("no architecture given; pass one, e.g. arch='mlp:40-64-2'")
        spec = ArchSpec.parse(arch)
        if not isinstance(support, Support):
            support = load_support(support, input_shape=spec.input_shape if spec.family == "cnn" else None,
                                   labels=classes)
        elif classes is not None:
            raise IgpgError("classes= picks labels while reading a support file; this support set is already read")
        spec.check_compatible(support.input_shape, len(support.labels))
        self.budget.check(spec, self.cfg.codes.chunk_size, self.cfg.codes.codes_per_chunk)
        made = support_network(self.bank, spec, support.x, support.y, support.labels, support.input_shape)
        if made is None:
            shapes = sorted({"x".join(map(str, load_dataset(key.rpartition("@")[2]).input_shape)) for key in self.bank.states})
            raise IgpgError(f"no generic network of this generator takes {spec.family} input "
                            f"{'x'.join(map(str, support.input_shape))}; it has inputs {', '.join(shapes) or 'none'}")
        net, source = made
        net.igpg_base = True
        net.igpg_support_acc = accuracy(net, support.x, support.y)
        counts = support.counts()
        net.igpg_metadata = {
            "igpg.arch": str(spec), "igpg.instruction": instruction, "igpg.dataset": "support",
            "igpg.classes": json.dumps(list(support.labels)), "igpg.generator": self.name, "igpg.seed": str(seed),
            "igpg.samples": "1", "igpg.source": source,
            "igpg.support": f"{len(support.y)} samples, {min(counts.values())}-{max(counts.values())} per label",
        }
        return net

    def generate_batch(self, requests: Iterable[dict], sampling: SamplingConfig | None = None,
                       data_root: str | Path | None = None, progress: Progress | None = None,
                       errors: str = "raise", **overrides) -> list[nn.Module | Exception]:
        """Many requests ({instruction, dataset, classes, arch, seed}; classes missing or None: read from the
        instruction), decoded in batches of one architecture (as
        many as the memory budget allows at once), each as `generate` decodes it (`sampling`, `overrides`).

        errors="raise": the first bad request raises. errors="return": each request fails alone (bad input, a size
        above the budget, an allocation that failed, anything raised while decoding it): its place in the returned
        list holds the exception, and every other request is still decoded."""
        if errors not in ("raise", "return"):
            raise IgpgError(f"errors must be 'raise' or 'return', got {errors!r}")
        sc = sampling_config(sampling, **overrides)  # bad sampling values fail every request: raise
        out: list = []
        reqs: dict[int, Request] = {}
        with using_data_root(data_root):
            for i, r in enumerate(requests):
                out.append(None)
                try:
                    if not isinstance(r, Mapping) or any(key not in r for key in ("instruction", "dataset", "arch")):
                        raise IgpgError(f"request {i + 1}: expected a dict with instruction, dataset, arch[, classes, "
                                        "seed]")
                    reqs[i] = self.check_request(r["instruction"], r["dataset"], r.get("classes"), r["arch"],
                                                 r.get("seed", 0))
                    if sc.guidance != 1.0:
                        self.budget.check(reqs[i].spec, self.cfg.codes.chunk_size, self.cfg.codes.codes_per_chunk,
                                          guided=True)
                except Exception as e:
                    if errors == "raise":
                        raise
                    out[i] = e
            by_arch: dict[ArchSpec, list[int]] = {}
            for i, r in reqs.items():
                by_arch.setdefault(r.spec, []).append(i)
            for idx in by_arch.values():
                best = self._best_isolated([reqs[i] for i in idx], sc, progress, errors)
                for i, net in zip(idx, best):
                    out[i] = net
        return out

    def _best_isolated(self, reqs: list[Request], sc: SamplingConfig, progress: Progress | None,
                       errors: str) -> list:
        """`_best` of one architecture's requests; if it fails and errors="return", each request alone (its
        exception in its place)."""
        try:
            return self._best(reqs, sc, progress)
        except Exception as e:
            if errors == "raise":
                raise
            if len(reqs) == 1:
                return [e]
        return [x for r in reqs for x in self._best_isolated([r], sc, progress, errors)]

    def export(self, requests, out_dir, batch_size: int = 16, progress=None, force: bool = False,
               data_root: str | Path | None = None, sampling: SamplingConfig | None = None, **overrides):
        """Export many requests (a JSONL path or dicts) as safetensors + manifest.jsonl; see igpg/export.py.
        Each is decoded as `generate` decodes it (`sampling`, `overrides`)."""
        from igpg.export import export_networks, producer_from_generator

        root = None if data_root is None else str(data_root)
        with using_data_root(root):
            return export_networks(requests, out_dir, producer_from_generator(self, sampling_config(sampling, **overrides)),
                                   batch_size=batch_size, generator_name=self.name, progress=progress, data_root=root,
                                   force=force)

    def retrieve(self, instruction: str, dataset: str, classes, arch, hits: int = 5, zoo=None, min_accuracy=None,
                 splits: str = "all", data_root: str | Path | None = None):
        """The `hits` nearest zoo networks for the query, architecture-aware; see igpg/retrieval.py."""
        from igpg.retrieval import retrieve

        return retrieve(zoo if zoo is not None else DEFAULT_ZOO, instruction, dataset, classes, arch, hits=hits,
                        min_accuracy=min_accuracy, splits=splits, data_root=None if data_root is None else str(data_root))

    def generate_or_retrieve(self, instruction: str, dataset: str, classes=None, arch=None, seed: int = 0,
                             hits: int = 5, zoo=None, sampling: SamplingConfig | None = None,
                             data_root: str | Path | None = None, **overrides) -> nn.Module:
        """The better of the generated network (decoded as `generate` decodes it: `sampling`, `overrides`) and the
        `hits` nearest zoo networks of exactly this architecture and these labels, judged on the support samples;
        `net.igpg_metadata["igpg.source"]` says which it is ("generated", "base:..." or "retrieved:<net_id>"). Ties
        go to the generated network."""
        sc = sampling_config(sampling, **overrides)
        with using_data_root(data_root):
            return self._generate_or_retrieve(instruction, dataset, classes, arch, seed, hits, zoo, sc)

    def _generate_or_retrieve(self, instruction, dataset, classes, arch, seed: int, hits: int, zoo,
                              sc: SamplingConfig) -> nn.Module:
        from igpg.retrieval import retrieve

        req = self.check_request(instruction, dataset, classes, arch, seed)
        net = self.generate(instruction, dataset, classes, req.spec, seed=seed, sampling=sc)
        best, best_acc = net, net.igpg_support_acc
        x, y = support_set(req.task, self.cfg.model.k_support if sc.k is None else sc.k, seed=seed)
        try:
            found = retrieve(zoo if zoo is not None else DEFAULT_ZOO, instruction, dataset, req.task.labels, req.spec,
                         hits=hits)
        except IgpgError:
            found = []  # no zoo, or nothing compatible in it: the generated network stands
        for hit in found:
            if not (hit.exact_arch and hit.labels_match):
                continue  # a network for other labels would answer other questions
            cand = hit.load()
            acc = accuracy(cand, x, y)
            if acc > best_acc:
                best, best_acc = cand, acc
                self._annotate(best, req, sc.samples)
                best.igpg_metadata["igpg.source"] = f"retrieved:{hit.net_id}"
        best.igpg_support_acc = best_acc
        return best

    def _annotate(self, net: nn.Module, req: Request, samples: int) -> None:
        net.igpg_metadata = {
            "igpg.arch": str(req.spec), "igpg.instruction": req.instruction, "igpg.dataset": req.task.dataset,
            "igpg.classes": req.task.classes_json(), "igpg.generator": self.name, "igpg.seed": str(req.seed),
            "igpg.samples": str(samples), "igpg.source": "generated",
        }
        if req.labels_from != "classes":  # no classes were given: the labels in igpg.classes were read from it
            net.igpg_metadata["igpg.labels_from"] = req.labels_from

    def describe(self) -> dict:
        return {"name": self.name, "config": self.cfg.model_dump(mode="json"),
                "tokenizer": self.tokenizer.cfg.model_dump(mode="json")}
