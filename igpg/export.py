"""Batch export: many requests -> `OUT/NAME.safetensors` files plus `OUT/manifest.jsonl`, resumable.

    reqs, errors = parse_requests("requests.jsonl")        # one JSON object per line, validated line by line
    report = export_networks("requests.jsonl", "out/", producer=producer_from_generator(gen))
    report.ok, report.exported, report.skipped, report.redone, report.failed
    net = load("out/n1.safetensors")                       # strict load; net.igpg_metadata holds the header

A request line: {"name": "n1", "instruction": "...", "dataset": "digits", "classes": [3, 5, 8],
"arch": "mlp:64-32-3", "seed": 0}; `classes` may nest groups: [[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]]. Without
`classes` (or with null) the labels are read from the instruction (`igpg.data.labels_from_instruction`; a request
they cannot be read from is refused alone), recorded in the manifest and the file (`igpg.labels_from`).

How networks are made is not this module's business: a `Producer` turns a batch of requests into one network
(plus extra metadata) per request. What this module guarantees:
- each file is written atomically (temp + fsync + rename) and deterministically (same weights and metadata ->
  same bytes), with tensor names = `ArchSpec.build().state_dict()` names and the request in `__metadata__`;
- the manifest is rewritten atomically after every batch and lists exactly the complete files (name, file,
  sha256, arch, dataset, classes, seed, generator, support_acc on the task's train split, test_acc, request);
- a re-run skips what the manifest lists with an intact file for an unchanged request and redoes the rest;
- nothing is written outside the output directory, and one export at a time holds it (`OUT/.lock`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from igpg.arch import ArchSpec
from igpg.data import Task, labels_from_instruction, load_dataset
from igpg.errors import IgpgError, one_line
from igpg.evaluation.accuracy import accuracy
from igpg.io import atomic_write_text, check_writable, load_weights, read_header, save_weights, sha256_file, temp_pattern
from igpg.text import check_instruction

MANIFEST = "manifest.jsonl"
SUFFIX = ".safetensors"
REQUIRED_KEYS = ("name", "instruction", "dataset", "arch")
OPTIONAL_KEYS = ("classes", "seed")
MAX_NAME = 128  # characters; a name is also a file name
MAX_SEED = 2**63 - 1  # fits int64 (SQLite, numpy) and torch.manual_seed
# the metadata keys that state the request: a producer may not contradict them
FACT_KEYS = ("igpg.name", "igpg.arch", "igpg.instruction", "igpg.dataset", "igpg.classes", "igpg.seed")

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_NAME_HELP = f"names are 1..{MAX_NAME} characters of A-Z a-z 0-9 . _ -, not starting with '.', without '..'"
# what atomic_path leaves behind when a process dies mid-write: ".NAME.safetensors.igpg-<8 random>.tmp"; nothing
# else is ever deleted (a user's ".notes.safetensors.backup.tmp" stays)
_STRAY_TMP = temp_pattern(r"[A-Za-z0-9._-]+\.safetensors|manifest\.jsonl|igpg-probe")


# ---- requests --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    name: str  # output file stem: OUT/NAME.safetensors
    instruction: str  # normalised by check_instruction (whitespace collapsed): what the producer conditions on
    dataset: str  # registry name, e.g. "digits"
    classes: list | None  # as given: [3, 5, 8] or nested groups [[1, 3], [0, 2]]; None: read from the instruction
    arch: str  # as given; `spec` is the parsed form and str(spec) the canonical one
    seed: int = 0  # non-negative; the producer's seed for this network
    line: int = 0  # 1-based line in the JSONL file (position in the list for API dicts; 0 if built directly)
    data_root: str | None = field(default=None, compare=False, repr=False)  # for torchvision:<Name> datasets
    task: Task = field(init=False, compare=False, repr=False)  # derived: dataset + ordered labels + instruction
    spec: ArchSpec = field(init=False, compare=False, repr=False)  # derived, checked against dataset and labels

    def __post_init__(self) -> None:
        check_name(self.name)
        if not isinstance(self.instruction, str):
            raise IgpgError(f"instruction must be a string, got {_shown(self.instruction)}")
        object.__setattr__(self, "instruction", check_instruction(self.instruction))
        if not isinstance(self.dataset, str):
            raise IgpgError(f"dataset must be a string, got {_shown(self.dataset)}")
        if self.classes is not None and not isinstance(self.classes, (list, tuple)):
            raise IgpgError(f"classes must be a list like [3, 5, 8] or [[1, 3], [0, 2]], got {_shown(self.classes)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise IgpgError(f"seed must be an integer in 0..{MAX_SEED}, got {_shown(self.seed)}")
        if self.classes is None:
            labels = labels_from_instruction(self.instruction, load_dataset(self.dataset, self.data_root),
                                             hint='give them as "classes", e.g. "classes": [3, 5, 8] or [[1, 3, 5], [0, 2, 4]]')
            task = Task(self.dataset, labels, self.instruction)
        else:
            task = Task.from_classes(self.dataset, self.classes, self.instruction)
        spec = ArchSpec.parse(self.arch)
        spec.check_compatible(load_dataset(self.dataset, self.data_root).input_shape, task.num_labels)
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "spec", spec)

    @classmethod
    def from_dict(cls, obj: object, line: int = 0, data_root: str | None = None) -> ExportRequest:
        """A request from a parsed JSON object; exactly the keys name, instruction, dataset, arch[, classes, seed]."""
        if not isinstance(obj, Mapping):
            raise IgpgError(f"a request must be a JSON object like {{\"name\": \"n1\", ...}}, got {type(obj).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in obj]
        unknown = sorted(str(k) if str(k).isprintable() else repr(k) for k in obj if k not in REQUIRED_KEYS + OPTIONAL_KEYS)
        if missing or unknown:
            parts = ([f"missing key(s) {', '.join(missing)}"] if missing else []) + (
                [f"unknown key(s) {', '.join(unknown)}"] if unknown else [])
            raise IgpgError(f"{'; '.join(parts)} (keys: {', '.join(REQUIRED_KEYS)}, optional classes, seed)")
        return cls(obj["name"], obj["instruction"], obj["dataset"], obj.get("classes"), obj["arch"],
                   obj.get("seed", 0), line, data_root)

    def as_dict(self) -> dict:
        """The request as a JSON object (instruction normalised, arch canonical), as `from_dict` reads it."""
        return {"name": self.name, "instruction": self.instruction, "dataset": self.dataset,
                "classes": json.loads(self.task.classes_json()), "arch": str(self.spec), "seed": self.seed}

    def fingerprint(self) -> str:
        """16 hex of a sha256 over the canonical request: a changed request under the same name is redone."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def metadata(self, generator: str) -> dict[str, str]:
        """The safetensors `__metadata__` that states this request."""
        meta = {"igpg.name": self.name, "igpg.arch": str(self.spec), "igpg.instruction": self.instruction,
                "igpg.dataset": self.dataset, "igpg.classes": self.task.classes_json(),
                "igpg.generator": generator, "igpg.seed": str(self.seed)}
        if self.classes is None:
            meta["igpg.labels_from"] = "instruction"
        return meta


@dataclass(frozen=True)
class RequestError:
    line: int  # 1-based line in the JSONL file (position for API dicts; 0 if unknown)
    name: str | None  # the request's name when it could be read
    message: str  # one line

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line else []
        where += [repr(self.name)] if self.name is not None else []
        return f"{' '.join(where)}: {self.message}" if where else self.message


def check_name(name: object) -> str:
    """A request name that is safe as a file stem in the output directory, or IgpgError."""
    if not isinstance(name, str):
        raise IgpgError(f"name must be a string, got {_shown(name)}; {_NAME_HELP}")
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name) or name.startswith(".") or ".." in name:
        raise IgpgError(f"bad name {_shown(name)}; {_NAME_HELP}")
    return name


def parse_requests(source: str | os.PathLike | Iterable[str], data_root: str | None = None,
                   ) -> tuple[list[ExportRequest], list[RequestError]]:
    """Valid requests and one RequestError per invalid line, both in file order.

    `source` is a path to a JSONL file, or an iterable of lines (a str is always a path). Blank lines and lines
    starting with '#' are skipped but counted. A name used twice is an error on its later line; names that
    differ only in letter case count as the same (they are one file on case-insensitive file systems).
    """
    if isinstance(source, (str, os.PathLike)):
        lines = _read_lines(Path(source))
    else:
        lines = [s if isinstance(s, str) else s.decode("utf-8", "replace") for s in source]
    requests: list[ExportRequest] = []
    errors: list[RequestError] = []
    seen: dict[str, int] = {}  # lower-cased name -> line that took it
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text or text.startswith("#"):
            continue
        name = None
        try:
            obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
            name = obj.get("name") if isinstance(obj, dict) and isinstance(obj.get("name"), str) else None
            name = _claim_name(name, seen, number)
            requests.append(ExportRequest.from_dict(obj, number, data_root))
        except json.JSONDecodeError as e:
            errors.append(RequestError(number, None, f"not valid JSON ({e.msg} at column {e.colno})"))
        except IgpgError as e:
            errors.append(RequestError(number, name, _one_line(e)))
        except (ValueError, RecursionError):  # json: an integer too long to read, nesting too deep
            errors.append(RequestError(number, None, "not valid JSON (an integer too long or nesting too deep)"))
        except Exception as e:  # anything else one line raises (a dataset loader's own error) fails that line alone
            errors.append(RequestError(number, name, _one_line(e)))
    return requests, errors


def _claim_name(name: str | None, seen: dict[str, int], line: int) -> str | None:
    """Record a (syntactically safe) name as taken by `line`; a second taker is an error."""
    if name is None:
        return None
    try:
        check_name(name)
    except IgpgError:
        return name
    key = name.lower()
    if key in seen:
        raise IgpgError(f"duplicate name {name!r} (already used on line {seen[key]}; names are compared "
                        "ignoring letter case)")
    seen[key] = line
    return name


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IgpgError(f"requests file {path} not found") from None
    except IsADirectoryError:
        raise IgpgError(f"requests file {path} is a directory") from None
    except OSError as e:
        raise IgpgError(f"cannot read requests file {path}: {e.strerror}") from None
    # split on \n only: str.splitlines would also split on U+2028 etc., which may sit inside a JSON string
    return [chunk.decode("utf-8", "replace") for chunk in raw.split(b"\n")]


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise IgpgError(f"key(s) {', '.join(map(repr, dup))} given twice in one request")
    return dict(pairs)


def _collect(requests, data_root: str | None) -> tuple[list[ExportRequest], list[RequestError]]:
    """Requests from a path, or from an iterable of ExportRequest / dict, with duplicate names refused."""
    if isinstance(requests, (str, os.PathLike)):
        return parse_requests(requests, data_root)
    if isinstance(requests, (ExportRequest, Mapping)):
        raise IgpgError("requests must be a JSONL path or a list of requests, got a single request")
    valid: list[ExportRequest] = []
    errors: list[RequestError] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(requests, start=1):
        raw_name = item.name if isinstance(item, ExportRequest) else (
            item.get("name") if isinstance(item, Mapping) else None)
        name = raw_name if isinstance(raw_name, str) else None
        line = item.line if isinstance(item, ExportRequest) else position
        try:
            _claim_name(name, seen, line or position)
            valid.append(item if isinstance(item, ExportRequest) else ExportRequest.from_dict(item, position, data_root))
        except Exception as e:  # IgpgError, or whatever else one request raises: that request fails alone
            errors.append(RequestError(line, name, _one_line(e)))
    return valid, errors


# ---- producing -------------------------------------------------------------------------------------------------

# Given a batch of requests, one (network, extra metadata) per request, in order, e.g.
# (net, {"igpg.generator": "default@<hash>", "igpg.source": "generated"}), or an exception in place of the pair
# for a request that failed alone. Raising fails the batch, which is then retried one request at a time.
Producer = Callable[[list[ExportRequest]], list[tuple[nn.Module, dict[str, str]]]]


def producer_from_generator(gen, sampling=None, **overrides) -> Producer:
    """A Producer over `ParameterGenerator.generate_batch` (one decode per architecture in the batch), decoding as
    `sampling` (a SamplingConfig, default greedy) with `overrides` (its field names) says."""
    from igpg.generator.sample import sampling_config  # not at the top: the generator package imports this module

    sc = sampling_config(sampling, **overrides)  # bad values are refused here, before any request

    def produce(batch: list[ExportRequest]) -> list[tuple[nn.Module, dict[str, str]] | Exception]:
        nets = gen.generate_batch([r.as_dict() for r in batch], sampling=sc, errors="return")
        out: list = []
        for net in nets:
            if isinstance(net, Exception):  # this request failed alone (refused by the budget, say)
                out.append(net)
                continue
            extra = {k: v for k, v in getattr(net, "igpg_metadata", {}).items() if k not in FACT_KEYS}
            extra.setdefault("igpg.generator", gen.name)
            out.append((net, extra))
        return out

    return produce


def _batches(requests: list[ExportRequest], batch_size: int) -> list[list[ExportRequest]]:
    """Group by canonical arch (stable, in order of first appearance), then chunk into batch_size."""
    by_arch: dict[str, list[ExportRequest]] = {}
    for r in requests:
        by_arch.setdefault(str(r.spec), []).append(r)
    return [group[i : i + batch_size] for group in by_arch.values() for i in range(0, len(group), batch_size)]


def _produce(batch: list[ExportRequest], producer: Producer) -> list[tuple[nn.Module, dict] | RequestError]:
    """Call the producer once for the batch; if it fails the batch (any exception: bad input, an allocation that
    failed, a bug), once per request, so that one bad request fails alone and the others still finish."""
    try:
        results = _checked_call(batch, producer)
    except Exception as e:
        if len(batch) == 1:
            return [RequestError(batch[0].line, batch[0].name, _one_line(e))]
        results = []
        for r in batch:
            try:
                results += _checked_call([r], producer)
            except Exception as e1:
                results.append(e1)
    return [RequestError(r.line, r.name, _one_line(x)) if isinstance(x, BaseException) else x
            for r, x in zip(batch, results)]


def _checked_call(batch: list[ExportRequest], producer: Producer) -> list:
    results = producer(list(batch))
    if not isinstance(results, (list, tuple)) or len(results) != len(batch):
        got = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
        raise TypeError(f"the producer must return one (network, metadata) per request: {len(batch)} asked, got {got}")
    return list(results)


def _canonical_net(req: ExportRequest, net: object) -> nn.Module:
    """A fresh `spec.build()` holding the produced weights (float32, exact state_dict names), or IgpgError."""
    if not isinstance(net, nn.Module):
        raise IgpgError(f"the producer returned {type(net).__name__}, not a torch.nn.Module")
    state = net.state_dict()
    problem = req.spec.schema_problem(state, values=False)
    if problem:
        raise IgpgError(f"the produced network does not match '{req.spec}': {problem}")
    for k, t in state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise IgpgError(f"the produced network has NaN or infinite values in {k!r}")
    return req.spec.load(state)


def _metadata(req: ExportRequest, extra: object, generator_name: str) -> dict[str, str]:
    if not isinstance(extra, Mapping):
        raise IgpgError(f"the producer's metadata must be a dict of strings, got {type(extra).__name__}")
    extra = {str(k): str(v) for k, v in extra.items()}
    facts = req.metadata(extra.get("igpg.generator") or generator_name or "unknown")
    for k in FACT_KEYS:
        if k in extra and extra[k] != facts[k]:
            raise IgpgError(f"the producer's metadata says {k}={extra[k]!r} but the request has {facts[k]!r}")
    return {**extra, **facts}


# ---- the output directory --------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    out_dir: Path
    exported: list[str] = field(default_factory=list)  # written by this run, in order (includes `redone`)
    skipped: list[str] = field(default_factory=list)  # already complete in the manifest: not produced again
    redone: list[str] = field(default_factory=list)  # listed before but missing, corrupt, altered or changed request
    failed: list[RequestError] = field(default_factory=list)  # invalid lines and producer refusals
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """False when any request failed (the CLI then exits non-zero)."""
        return not self.failed

    @property
    def manifest(self) -> Path:
        return self.out_dir / MANIFEST

    def summary(self) -> str:
        redone = f" ({len(self.redone)} redone)" if self.redone else ""
        return (f"exported {len(self.exported)}{redone}, skipped {len(self.skipped)}, failed {len(self.failed)} "
                f"in {self.seconds:.1f} s; manifest {self.manifest}")


def export_networks(requests, out_dir: str | os.PathLike, producer: Producer, batch_size: int = 16,
                    generator_name: str = "", progress: Callable[[int, int], None] | None = None,
                    data_root: str | None = None, force: bool = False) -> ExportReport:
    """Produce and write every request not already complete in `out_dir`; see the module docstring.

    `requests`: a JSONL path, or an iterable of ExportRequest or dicts. Invalid requests and requests the producer
    refuses (IgpgError) land in `report.failed`; the others are still exported. `generator_name` fills
    igpg.generator when the producer's metadata does not. `progress(done, total)` is called after each batch,
    counting the requests that needed producing. Raises IgpgError for an unusable out dir or a running export.

    Only files this export wrote are replaced: a NAME.safetensors the manifest does not list fails its request
    (unless `force`), except one whose metadata states this very request (what an export killed between writing
    the file and listing it leaves).
    """
    from igpg.zoo.catalogue import exclusive_lock  # local: keeps `import igpg.export` light

    start = time.monotonic()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise IgpgError(f"batch size must be a positive integer, got {batch_size!r}")
    if not callable(producer):
        raise IgpgError("producer must be a callable taking a list of requests")
    valid, failed = _collect(requests, data_root)
    if failed and not valid:  # nothing to export: bad input writes nothing, not even the directory
        return ExportReport(Path(out_dir).expanduser(), failed=failed, seconds=time.monotonic() - start)
    out = _prepare_out_dir(out_dir)
    report = ExportReport(out, failed=failed)
    with exclusive_lock(out, "export"):
        _remove_stray_temps(out)
        on_disk = _read_manifest_text(out)
        manifest = _parse_manifest(on_disk)
        requested = {r.name for r in valid}
        for name in [n for n, e in manifest.items() if n not in requested and not (out / e["file"]).is_file()]:
            del manifest[name]  # a listed file that is gone: the manifest lists only complete files
        todo: list[ExportRequest] = []
        for r in valid:
            entry = manifest.get(r.name)
            if entry is None and not force and _foreign(out / (r.name + SUFFIX), r):
                report.failed.append(RequestError(r.line, r.name, f"{out / (r.name + SUFFIX)} exists and is not a file "
                                                  f"of this export (not in its {MANIFEST}); move it away or pass --force"))
                continue
            if entry is not None and _intact(out, entry, r):
                report.skipped.append(r.name)
                continue
            if entry is not None:
                report.redone.append(r.name)
                if not _file_matches(out, entry):  # the file is not what the entry says: unlist it now
                    del manifest[r.name]
            todo.append(r)
        if _manifest_text(manifest) != on_disk:
            _write_manifest(out, manifest)
        # before any decoding: room for every file (float32 weights + a header) and a manifest line each
        check_writable(out, sum(4 * r.spec.n_params + 64 * 1024 for r in todo))
        done, total = 0, len(todo)
        for batch in _batches(todo, batch_size):
            for r, result in zip(batch, _produce(batch, producer)):
                if isinstance(result, RequestError):
                    report.failed.append(result)
                    continue
                try:
                    manifest[r.name] = _write_network(out, r, result, generator_name)
                    report.exported.append(r.name)
                except Exception as e:  # bad producer output, a full disk, a foreign file in the way: this one only
                    report.failed.append(RequestError(r.line, r.name, _one_line(e)))
            _write_manifest(out, manifest)
            done += len(batch)
            if progress is not None:
                progress(done, total)
    report.redone = [n for n in report.redone if n in set(report.exported)]
    report.failed.sort(key=lambda e: e.line)
    report.seconds = time.monotonic() - start
    return report


def _write_network(out: Path, req: ExportRequest, result: object, generator_name: str) -> dict:
    """Write OUT/NAME.safetensors; returns its manifest entry. Bad producer output is an IgpgError."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise IgpgError("the producer must return (network, metadata) pairs")
    net = _canonical_net(req, result[0])
    metadata = _metadata(req, result[1], generator_name)
    path = _inside(out, req.name + SUFFIX)
    try:
        digest = save_weights(path, net.state_dict(), metadata)
    except OSError as e:  # disk full, permissions changed mid-run: this request fails, the manifest stays true
        raise IgpgError(f"cannot write {path}: {e.strerror or e}") from None
    ds = load_dataset(req.dataset, req.data_root)
    return {"name": req.name, "file": path.name, "sha256": digest, "arch": metadata["igpg.arch"],
            "dataset": req.dataset, "classes": json.loads(metadata["igpg.classes"]), "seed": req.seed,
            "generator": metadata["igpg.generator"],
            "support_acc": _accuracy(net, req.task, ds.train), "test_acc": _accuracy(net, req.task, ds.test),
            "request": req.fingerprint()}


def _accuracy(net: nn.Module, task: Task, split) -> float | None:
    data = task.relabel(split)
    return round(accuracy(net, data.x, data.y), 6) if len(data) else None


def _prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise IgpgError(f"--out {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise IgpgError(f"cannot create {out}: a parent is a file") from None
    except OSError as e:
        raise IgpgError(f"cannot create {out}: {e.strerror}") from None
    out = out.resolve()
    if not os.access(out, os.W_OK | os.X_OK):
        raise IgpgError(f"cannot write to {out}: permission denied")
    check_writable(out)  # tried for real: a read-only mount, or root, passes os.access
    for special in (".lock", MANIFEST):
        if (out / special).is_symlink():  # writing through it would land outside the directory
            raise IgpgError(f"{out / special} is a symbolic link; igpg writes only real files in {out}")
    return out


def _inside(out: Path, filename: str) -> Path:
    """OUT/filename, after checking it cannot resolve outside OUT (names are already restricted)."""
    path = out / filename
    if path.parent.resolve() != out or path.name != filename:
        raise IgpgError(f"refusing to write {filename!r} outside {out}")
    return path


def _remove_stray_temps(out: Path) -> None:
    """Temporary files of a killed export (".NAME.safetensors.<random>.tmp"); we hold the lock, so none is live."""
    for p in out.iterdir():
        if _STRAY_TMP.fullmatch(p.name) and (p.is_symlink() or p.is_file()):
            p.unlink(missing_ok=True)


# ---- the manifest ----------------------------------------------------------------------------------------------


def read_manifest(out_dir: str | os.PathLike) -> list[dict]:
    """The entries of OUT/manifest.jsonl, sorted by name ([] when there is none)."""
    out = Path(out_dir)
    return sorted(_parse_manifest(_read_manifest_text(out)).values(), key=lambda e: e["name"])


def _read_manifest_text(out: Path) -> str:
    path = out / MANIFEST
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        raise IgpgError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}; move it away to start over") from None


def _parse_manifest(text: str) -> dict[str, dict]:
    """name -> entry; lines that cannot be ours (bad JSON, unsafe name, another file name) are dropped."""
    entries: dict[str, dict] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            name = check_name(entry["name"])
        except (ValueError, TypeError, KeyError):
            continue
        if entry.get("file") != name + SUFFIX or not isinstance(entry.get("sha256"), str):
            continue
        entries[name] = entry
    return entries


def _manifest_text(manifest: dict[str, dict]) -> str:
    return "".join(json.dumps(manifest[n], ensure_ascii=False) + "\n" for n in sorted(manifest))


def _write_manifest(out: Path, manifest: dict[str, dict]) -> None:
    atomic_write_text(_inside(out, MANIFEST), _manifest_text(manifest))


def _file_matches(out: Path, entry: dict) -> bool:
    path = out / entry["file"]
    try:
        return path.is_file() and not path.is_symlink() and sha256_file(path) == entry["sha256"]
    except OSError:
        return False


def _foreign(path: Path, req: ExportRequest) -> bool:
    """Something is at `path` that this export did not write for `req` (a user's file, a directory, a link)."""
    if not (path.exists() or path.is_symlink()):
        return False
    if path.is_symlink() or not path.is_file():
        return True
    try:
        meta = read_metadata(path)
    except IgpgError:
        return True
    facts = req.metadata("")
    return any(meta.get(k) != facts[k] for k in FACT_KEYS)


def _intact(out: Path, entry: dict, req: ExportRequest) -> bool:
    """The listed file is exactly what was written for this same request."""
    return entry.get("request") == req.fingerprint() and _file_matches(out, entry)


# ---- loading ---------------------------------------------------------------------------------------------------


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, from its header alone (sizes checked, tensors not read)."""
    return dict(read_header(path).get("__metadata__") or {})


def load(path: str | os.PathLike) -> nn.Module:
    """An exported network, loaded strictly into `ArchSpec.parse(metadata['igpg.arch']).build()`, in eval mode.

    Corrupt, truncated or non-finite files, a missing igpg.arch, and tensors that do not match it are one-line
    IgpgErrors naming the file. `net.igpg_metadata` holds the header's metadata.
    """
    state, metadata = load_weights(path)
    for name, t in state.items():  # load_state_dict would silently cast integers and booleans to float
        if not t.is_floating_point():
            raise IgpgError(f"{path}: tensor {name!r} has dtype {t.dtype}; network weights are floating point")
    arch = metadata.get("igpg.arch")
    if not arch:
        raise IgpgError(f"{path}: no igpg.arch in its metadata; not an igpg network (load it with safetensors)")
    try:
        spec = ArchSpec.parse(arch)
    except IgpgError as e:
        raise IgpgError(f"{path}: {_one_line(e)}") from None
    problem = spec.schema_problem(state, values=False)
    if problem:
        raise IgpgError(f"{path}: tensors do not match its architecture '{spec}': {problem}")
    for name, t in state.items():  # finite in float64 is not enough: load_state_dict casts to float32 (1e300 -> inf)
        if not torch.isfinite(t.to(torch.float32)).all():
            raise IgpgError(f"{path}: tensor {name!r} has values that are not finite as float32")
    net = spec.build()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise IgpgError(f"{path}: cannot load into '{spec}': {str(e).splitlines()[0]}") from None
    net.igpg_metadata = dict(metadata)
    return net.eval()


# ---- small helpers ---------------------------------------------------------------------------------------------


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(e: BaseException) -> str:
    return one_line(e)
