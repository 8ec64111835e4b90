"""Adversarial input, table-driven (issue 21): nothing a user types crashes a run, nothing of theirs is
overwritten, and no request can eat the machine.

CLI cases run the real `igpg` entry point in-process (`cli` fixture: exit code and stderr as a user sees them) and
check: exit code 2, stderr exactly one line `error: ...` of at most a few hundred characters naming the problem,
no traceback, and the case's tmp dir unchanged (unless the case says what may change). API cases check the same
through `IgpgError`. Cases that need a small or read-only file system mount a tmpfs (root only; skipped elsewhere).
Everything runs on the released default model at tiny sizes; huge architectures are refused before any
allocation, which the timing assertions check.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from igpg import ArchSpec, IgpgError, export_networks, load, read_metadata
from igpg.errors import MAX_MESSAGE, one_line
from igpg.export import read_manifest
from igpg.generator.api import DEFAULT_MODEL
from igpg.generator.config import SECTIONS as GENERATOR_SECTIONS
from igpg.tokenizer.model import SECTIONS as TOKENIZER_SECTIONS
from test_bad_input import snapshot  # every file and directory under a root, with modes and hashes
from igpg.generator.budget import FIXED, Budget, parse_size, request_cost
from igpg.generator.rows import row_layout
from igpg.generator.sample import SamplingConfig
from igpg.io import load_weights, locked_dir, save_weights, sha256_file

INSTRUCTION = "Classify handwritten digits 3, 5 and 8"
SMALL = "mlp:64-32-3"
WIDE = "mlp:64-4000-4000-3"  # 16.3M parameters: tried to allocate 10 GB before budgets
DEEP_WIDE = "mlp:64-" + "4000-" * 8 + "3"  # 112M parameters: tried to allocate 41 GB
LONE_SURROGATE = "Classify \ud800 digits"


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path], object]  # CLI: tmp -> argv; API: tmp -> a zero-argument call that must raise
    message: str  # must appear in the one-line error
    changes: bool = False  # the case may leave files behind (a full disk's lock file)


# ---- helpers -----------------------------------------------------------------------------------------------------


def generate(*extra: str, instruction: str = INSTRUCTION, arch: str = SMALL, out: str = "net.safetensors",
             dataset: str = "digits", before: Callable[[Path], object] | None = None) -> Callable[[Path], list]:
    """`igpg generate` argv (greedy, one sample) with extra options; `before(tmp)` prepares the tmp dir."""
    def setup(tmp: Path) -> list:
        if before:
            before(tmp)
        return ["generate", instruction, "--dataset", dataset, "--classes", "3,5,8", "--arch", arch,
                "--out", str(tmp / out), "--samples", "1", *extra]
    return setup


def _edit_config(path: Path, changes: dict, sections: dict) -> None:
    """Set each key of `changes` in the section of a config.json that owns it (a flat config: at the top)."""
    meta = json.loads(path.read_text())
    cfg = meta["config"]
    for key, value in changes.items():
        owner = next((name for name, cls in sections.items() if key in cls.model_fields), None)
        (cfg[owner] if owner in cfg else cfg)[key] = value
    path.write_text(json.dumps(meta))


def model_dir(tmp: Path, config: dict | None = None, weights: Callable[[dict], dict] | None = None,
              generic: Callable[[Path], None] | None = None, tokenizer: dict | None = None) -> Path:
    """A copy of the released model with its config edited, its weights changed, a generic file damaged, or its
    tokenizer (copied into model/tokenizer) with an edited config."""
    d = tmp / "model"
    shutil.copytree(DEFAULT_MODEL, d)
    if tokenizer is not None:  # the released model carries its tokenizer (model/tokenizer): edit that copy
        _edit_config(d / "tokenizer" / "config.json", tokenizer, TOKENIZER_SECTIONS)
    if config is not None:
        _edit_config(d / "config.json", config, GENERATOR_SECTIONS)
    if weights is not None:
        state, metadata = load_weights(d / "model.safetensors")
        save_weights(d / "model.safetensors", weights(state), metadata)
    if generic is not None:
        generic(d / "generic")
    return d


def with_model(**kw) -> Callable[[Path], list]:
    return lambda tmp: generate("--model", str(model_dir(tmp, **kw)))(tmp)


def first_cast(dtype: torch.dtype, value: float | None = None) -> Callable[[dict], dict]:
    """The first float tensor cast to `dtype` (and its first value set to `value`)."""
    def change(state: dict) -> dict:
        name = sorted(k for k, t in state.items() if t.is_floating_point())[0]
        t = (state[name] * 100).to(dtype)
        if value is not None:
            t.view(-1)[0] = value
        return {**state, name: t}
    return change


def drop_a_tensor(generic: Path) -> None:
    path = sorted(generic.glob("*.safetensors"))[0]
    state, metadata = load_weights(path)
    del state[sorted(state)[-1]]
    save_weights(path, state, metadata)


def hostile_mnist_cache(tmp: Path) -> list:
    """ROOT/MNIST/processed/{training,test}.pt: pickles whose loading would create the file PWNED."""
    processed = tmp / "root" / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        torch.save(_Payload(str(tmp / "PWNED")), processed / name)
    return ["data", "info", "torchvision:MNIST", "--data-root", str(tmp / "root")]


class _Payload:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def export(*lines: object, extra: tuple = (), before: Callable[[Path], None] | None = None) -> Callable[[Path], list]:
    def setup(tmp: Path) -> list:
        text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
        (tmp / "requests.jsonl").write_text(text, encoding="utf-8", errors="surrogatepass")
        if before:
            before(tmp)
        return ["export", str(tmp / "requests.jsonl"), "--out", str(tmp / "exported"), *extra]
    return setup


def request(name: str = "r1", **changes) -> dict:
    return {"name": name, "instruction": INSTRUCTION, "dataset": "digits", "classes": [3, 5, 8], "arch": SMALL,
            "seed": 0, **changes}


# ---- small file systems (root only) ------------------------------------------------------------------------------


def _mount(tmp: Path, name: str, size: str, readonly: bool = False) -> Path:
    d = tmp / name
    d.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    _MOUNTED.append(d)
    if readonly:
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True, capture_output=True)
    return d


def _fill(d: Path) -> None:
    """Write into d until the file system is full."""
    with open(d / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass


_MOUNTED: list[Path] = []


@pytest.fixture(autouse=True)
def _unmount():
    yield
    while _MOUNTED:
        subprocess.run(["umount", "-l", str(_MOUNTED.pop())], capture_output=True)


def read_only_dir(tmp: Path) -> None:
    _mount(tmp, "ro", "1m", readonly=True)


def full_dir(tmp: Path) -> None:
    _fill(_mount(tmp, "full", "64k"))


def full_export_dir(tmp: Path) -> None:
    full = _mount(tmp, "full", "64k")
    (full / "exported").mkdir()
    _fill(full)


# ---- the CLI table -----------------------------------------------------------------------------------------------

CLI_CASES = [
    # numeric options: finite and in range, refused before anything loads
    Case("temperature-nan", generate("--temperature", "nan"), "Invalid value for '--"),  # the option's range, while parsing
    Case("temperature-inf", generate("--temperature", "inf"), "Invalid value for '--"),  # the option's range, while parsing
    Case("temperature-negative", generate("--temperature", "-1"), "Invalid value for '--"),  # the option's range, while parsing
    Case("temperature-tiny-overflows", generate("--temperature", "1e-30"), "temperature must be"),
    Case("guidance-inf", generate("--guidance", "inf"), "Invalid value for '--"),  # the option's range, while parsing
    Case("guidance-nan", generate("--guidance", "nan"), "Invalid value for '--"),  # the option's range, while parsing
    Case("seed-above-int64", generate("--seed", str(2**63)), "seed must be an integer in 0..9223372036854775807"),
    Case("seed-negative", generate("--seed", "-1"), "Invalid value for '--"),  # the option's range, while parsing
    Case("samples-too-many", generate("--samples", "100000"), "samples must be an integer in 1..256"),
    Case("k-zero", generate("--k", "0"), "Invalid value for '--"),  # the option's range, while parsing
    Case("classes-100k-values", lambda tmp: [a if a != "3,5,8" else ",".join(map(str, range(100_000)))
                                             for a in generate()(tmp)], "class 10 is out of range"),
    Case("max-params-not-a-size", generate("--max-params", "lots"), "--max-params must be a number"),
    Case("max-memory-zero", generate("--max-memory", "0"), "--max-memory must be at least 1"),
    # text that is not text
    Case("instruction-lone-surrogate", generate(instruction=LONE_SURROGATE), "not valid text"),
    Case("instruction-undecodable-argv-byte", generate(instruction="Classify \udcff digits"), "not valid text"),
    Case("dataset-name-100k-chars-is-cut", generate(dataset="x" * 100_000), "unknown dataset"),
    # budgets: one line in seconds, no allocation
    Case("arch-wide-above-max-params", generate(arch=WIDE), "16,276,003 parameters, above the limit of 2,000,000"),
    Case("arch-deep-wide-above-max-params", generate(arch=DEEP_WIDE), "above the limit of 2,000,000 (--max-params)"),
    Case("arch-max-width-depth", generate(arch="mlp:64-" + "65536-" * 8 + "3"), "supports fan-in up to 4095"),
    Case("arch-above-max-memory", generate("--max-memory", "64MiB", arch="mlp:64-2000-3"),
         "above the limit of 64.0 MiB (--max-memory)"),
    # never touch what is not ours
    Case("out-exists-without-overwrite", generate(before=lambda tmp: (tmp / "net.safetensors").write_text("mine")),
         "exists; pass --overwrite"),
    Case("out-is-a-dangling-symlink", generate(before=lambda tmp: (tmp / "net.safetensors").symlink_to(tmp / "gone")),
         "exists; pass --overwrite"),
    # the file system refuses: checked before the work starts
    Case("out-dir-read-only", generate(out="ro/net.safetensors", before=read_only_dir), "Read-only file system"),
    Case("out-dir-full", generate(out="full/net.safetensors", before=full_dir), "not enough free space"),
    Case("export-disk-full-while-taking-lock", lambda tmp: full_export_dir(tmp) or export(request())(tmp)[:2]
         + ["--out", str(tmp / "full" / "exported")], "No space left on device", changes=True),
    # checkpoints: sizes range-checked, no silent casts, no path outside the model folder
    Case("config-dim-huge", with_model(config={"dim": 10**9}), "dim must be at most 4096"),
    Case("config-depth-huge", with_model(config={"depth": 10**6}), "depth must be at most 64"),
    Case("tokenizer-codebook-huge", with_model(tokenizer={"codebook_size": 10**9}), "codebook_size must be at most"),
    Case("tokenizer-hidden-in-range-but-not-the-weights", with_model(tokenizer={"hidden": 512}),
         "describes a model of"),
    Case("config-class-slots-huge", with_model(config={"class_slots": 10**12}), "class_slots must be at most"),
    Case("config-sizes-in-range-but-model-huge", with_model(config={"dim": 4096, "row_keys": 2**20}),
         "describes a model of"),
    Case("config-tokenizer-path-escapes", with_model(config={"tokenizer": "../../../../etc"}),
         "is not a tokenizer name"),
    Case("generator-weights-int32", with_model(weights=first_cast(torch.int32)), "dtype torch.int32"),
    Case("generator-weights-float64-overflow", with_model(weights=first_cast(torch.float64, 1e300)),
         "is not finite as torch.float32"),
    Case("generic-base-missing-a-tensor", with_model(generic=drop_a_tensor), "not a generic network of"),
    # unpickling: only torch.load(weights_only=True), which refuses a hostile pickle
    Case("hostile-mnist-processed-pickle", hostile_mnist_cache, "weights_only=True"),
]


def _float64_overflow(tmp: Path) -> Path:
    state = {k: v.double() for k, v in ArchSpec.parse("mlp:8-4-2").build().state_dict().items()}
    state["head.bias"][0] = 1e300  # finite in float64, inf in float32
    save_weights(tmp / "net.safetensors", state, {"igpg.arch": "mlp:8-4-2"})
    return tmp / "net.safetensors"


API_CASES = [
    Case("load-float64-overflows-float32", lambda tmp: (lambda p: lambda: load(p))(_float64_overflow(tmp)),
         "not finite as float32"),
    *[Case(f"sampling-{name}", lambda tmp, kw=kw: lambda: SamplingConfig(**kw), msg) for name, kw, msg in [
        ("temperature-inf", dict(temperature=float("inf")), "temperature must be"),
        ("temperature-bool", dict(temperature=True), "temperature must be"),
        ("guidance-huge", dict(guidance=1e6), "guidance must be"),
        ("top-k-zero", dict(top_k=0), "top_k must be"),
        ("top-p-nan", dict(top_p=float("nan")), "top_p must be"),
    ]],
    *[Case(f"size-{name}", lambda tmp, t=t: lambda: parse_size(t, "--max-memory"), msg) for name, t, msg in [
        ("negative", "-1", "must be a number"), ("unit-unknown", "4XB", "must be a number"),
        ("absurd", "99999999999999T", "too large"), ("zero", "0", "at least 1")]],
    Case("budget-not-an-int", lambda tmp: lambda: Budget(max_params=1.5), "max_params must be a positive integer"),
    Case("seed-with-16610-bits", lambda tmp: lambda: _generator().check_request(INSTRUCTION, "digits", [3, 5, 8], SMALL,
         10**5000), "got an integer of 16610 bits"),
]


def _generator():
    from igpg.generator import ParameterGenerator

    return ParameterGenerator.from_pretrained()


# ---- the checks --------------------------------------------------------------------------------------------------


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert len(lines[0]) <= MAX_MESSAGE + 100, f"{len(lines[0])} characters"
    return lines[0]


def test_the_tables_are_big_enough():
    ids = [c.id for c in CLI_CASES + API_CASES]
    assert len(ids) == len(set(ids)) and len(CLI_CASES) >= 25 and len(API_CASES) >= 10


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_adversarial_one_error_line_exit_2(case: Case, tmp_path: Path, cli):
    args = case.setup(tmp_path)
    before = snapshot(tmp_path)
    start = time.monotonic()
    res = cli(*args)
    seconds = time.monotonic() - start
    line = one_error_line(res.err)
    assert res.code == 2, res.err
    assert case.message in line, line
    assert seconds < 120, f"took {seconds:.0f} s to refuse"  # generous: a loaded machine; the API test times the check
    if not case.changes:
        assert snapshot(tmp_path) == before, "the command wrote or changed files"
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_adversarial_raises_igpg_error(case: Case, tmp_path: Path):
    call = case.setup(tmp_path)
    with pytest.raises(IgpgError) as info:
        call()
    assert case.message in str(info.value) and "\n" not in str(info.value), str(info.value)


# ---- budgets -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["mlp:64-32-3", "mlp:64-32-16-10", "mlp:784-100-10", "cnn:1x8x8-8-16-3",
                                  "cnn:1x40-4-8-10:k=5"])
def test_cost_estimate_counts_what_the_layout_holds(arch):
    """The estimate is arithmetic over the schema; it must agree with the row layout it avoids building."""
    spec = ArchSpec.parse(arch)
    lay = row_layout(arch, 8, 5)
    one, four = request_cost(spec, 8, 5), request_cost(spec, 8, 5, batch=4)
    assert (one.rows, one.codes, one.params) == (len(lay), lay.num_codes, spec.n_params)
    assert four.memory > 3 * (one.memory - (one.memory - four.memory // 4)) and four.memory > one.memory
    assert request_cost(spec, 8, 5, guided=True).memory == request_cost(spec, 8, 5, batch=2).memory


def test_huge_requests_are_refused_in_seconds_without_allocating():
    from igpg.generator import ParameterGenerator

    gen = ParameterGenerator.from_pretrained()
    gen.check_request(INSTRUCTION, "digits", [3, 5, 8], SMALL)  # loads the dataset: not what is timed
    for arch in (WIDE, DEEP_WIDE, "mlp:64-" + "65536-" * 8 + "3", "mlp:64-1500-1500-3"):
        start = time.monotonic()
        with pytest.raises(IgpgError, match="--max-params|fan-in"):
            gen.check_request(INSTRUCTION, "digits", [3, 5, 8], arch)
        assert time.monotonic() - start < 2
    gen.budget = Budget(max_params=10**12, max_memory=2**30)  # params allowed: the memory estimate refuses
    with pytest.raises(IgpgError, match="--max-memory"):
        gen.check_request(INSTRUCTION, "digits", [3, 5, 8], WIDE)


# ---- per-request isolation --------------------------------------------------------------------------------------


def test_generate_batch_isolates_each_request():
    from igpg.generator import ParameterGenerator

    gen = ParameterGenerator.from_pretrained()
    good = request()
    reqs = [request(instruction=LONE_SURROGATE), request(arch=DEEP_WIDE), {"instruction": "x"}, good]
    out = gen.generate_batch(reqs, errors="return")
    assert isinstance(out[3], torch.nn.Module) and out[3].igpg_metadata["igpg.arch"] == SMALL
    assert "not valid text" in str(out[0]) and "--max-params" in str(out[1]) and "expected a dict" in str(out[2])
    assert all(isinstance(x, IgpgError) for x in out[:3])
    with pytest.raises(IgpgError, match="not valid text"):
        gen.generate_batch(reqs)  # the default still raises at the first bad request


def test_generate_batch_splits_a_batch_to_fit_the_memory_budget():
    from igpg.generator import ParameterGenerator

    gen = ParameterGenerator.from_pretrained()
    calls: list[int] = []
    decode = gen._decode
    gen._decode = lambda reqs, *a: calls.append(len(reqs)) or decode(reqs, *a)  # a spy: the real decode runs
    one = request_cost(ArchSpec.parse(SMALL), gen.cfg.codes.chunk_size, gen.cfg.codes.codes_per_chunk).memory
    gen.budget = Budget(max_memory=FIXED + 2 * (one - FIXED))  # room for two networks at a time
    nets = gen.generate_batch([request(seed=s) for s in range(3)])
    assert calls == [2, 1] and len(nets) == 3 and all(isinstance(n, torch.nn.Module) for n in nets)


class _Failing:
    """A producer whose networks are random-init (real), failing the requests named in `fail` with `error`."""

    def __init__(self, fail: dict[str, BaseException]):
        self.fail, self.batches = fail, []

    def __call__(self, batch):
        self.batches.append([r.name for r in batch])
        for r in batch:
            if r.name in self.fail:
                raise self.fail[r.name]
        return [(r.spec.build(), {"igpg.generator": "random-init"}) for r in batch]


@pytest.mark.parametrize("error,shown", [(MemoryError(), "out of memory"),
                                         (RuntimeError("CUDA error: device-side assert"), "RuntimeError: CUDA error"),
                                         (KeyError("head.weight"), "KeyError: 'head.weight'"),
                                         (IgpgError("x" * 10_000), "x" * 100)])
def test_export_any_exception_fails_one_request_with_its_line(tmp_path, error, shown):
    reqs = [request(f"r{i}", seed=i) for i in range(4)]
    report = export_networks(reqs, tmp_path, _Failing({"r2": error}), batch_size=4)
    assert report.exported == ["r0", "r1", "r3"] and [(e.line, e.name) for e in report.failed] == [(3, "r2")]
    assert shown in report.failed[0].message and len(report.failed[0].message) <= MAX_MESSAGE
    assert [e["name"] for e in read_manifest(tmp_path)] == ["r0", "r1", "r3"]


def test_cli_export_reports_each_bad_line_and_finishes_the_rest(tmp_path, cli):
    args = export(request("r1"), request("r2", instruction=LONE_SURROGATE), request("r3", arch=DEEP_WIDE),
                  request("r4", seed=4))(tmp_path)
    res = cli(*args)
    assert res.code == 2 and "Traceback" not in res.err, res.err
    errors = [x for x in res.err.splitlines() if x.startswith("error: ")]
    assert len(errors) == 2 and errors[0].startswith("error: line 2 'r2'") and "not valid text" in errors[0]
    assert errors[1].startswith("error: line 3 'r3'") and "--max-params" in errors[1]
    assert [e["name"] for e in read_manifest(tmp_path / "exported")] == ["r1", "r4"]


# ---- never touch what is not ours -------------------------------------------------------------------------------


def test_export_keeps_a_users_files_and_replaces_them_only_with_force(tmp_path, cli):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "r1.safetensors").write_bytes(b"the user's own")
    (out / ".notes.safetensors.backup.tmp").write_bytes(b"the user's backup")
    (out / ".r2.safetensors.igpg-abcd1234.tmp").write_bytes(b"half")  # what a killed export leaves
    res = cli(*export(request("r1"), request("r2"))(tmp_path))
    assert res.code == 2 and "line 1 'r1'" in res.err and "--force" in res.err
    assert (out / "r1.safetensors").read_bytes() == b"the user's own"
    assert (out / ".notes.safetensors.backup.tmp").read_bytes() == b"the user's backup"
    assert not (out / ".r2.safetensors.igpg-abcd1234.tmp").exists()
    assert [e["name"] for e in read_manifest(out)] == ["r2"]
    res = cli(*export(request("r1"), request("r2"), extra=("--force",))(tmp_path))
    assert res.code == 0, res.err
    assert read_metadata(out / "r1.safetensors")["igpg.name"] == "r1"
    assert sorted(e["name"] for e in read_manifest(out)) == ["r1", "r2"]


def test_export_redoes_its_own_unlisted_file_without_force(tmp_path):
    """A file holding this very request's metadata is what an export killed between writing and listing it left."""
    reqs = [request("r1")]
    export_networks(reqs, tmp_path, _Failing({}))
    (tmp_path / "manifest.jsonl").write_text("")  # killed before the manifest listed r1
    report = export_networks(reqs, tmp_path, _Failing({}))
    assert report.exported == ["r1"] and report.ok


def test_generate_cleans_its_stale_temporaries_and_prints_the_files_sha(tmp_path, cli):
    (tmp_path / ".net.safetensors.igpg-k1ll3d00.tmp").write_bytes(b"half")  # a generate killed mid-save
    (tmp_path / ".net.safetensors.backup.tmp").write_bytes(b"the user's")
    res = cli(*generate()(tmp_path))
    assert res.code == 0, res.err
    digest = sha256_file(tmp_path / "net.safetensors")
    assert f"sha256 {digest[:12]}" in res.out
    assert sorted(p.name for p in tmp_path.iterdir()) == [".net.safetensors.backup.tmp", "net.safetensors"]


def test_concurrent_writers_of_one_out_take_turns(tmp_path, cli):
    """Another writer holds the directory while generate decodes and writes the file meanwhile: generate then
    refuses (no --overwrite), or replaces it and prints the sha256 of the file it leaves (--overwrite)."""
    out = tmp_path / "net.safetensors"
    held = threading.Event()

    def other_writer():
        with locked_dir(tmp_path):
            held.set()
            time.sleep(1)  # generate checks --out (free), decodes, and waits here to write (or comes after)
            save_weights(out, ArchSpec.parse(SMALL).build().state_dict(), {"igpg.arch": SMALL})

    for extra, code in (((), 2), (("--overwrite",), 0)):
        out.unlink(missing_ok=True)
        held.clear()
        thread = threading.Thread(target=other_writer)
        thread.start()
        held.wait()
        res = cli(*generate(*extra)(tmp_path))
        thread.join()
        assert res.code == code, res.err
        if code == 2:
            assert "written by another process meanwhile" in one_error_line(res.err) and res.out == ""
            assert read_metadata(out).get("igpg.generator") is None  # the other writer's file stays
        else:
            assert f"sha256 {sha256_file(out)[:12]}" in res.out and read_metadata(out)["igpg.generator"]


# ---- messages ----------------------------------------------------------------------------------------------------


def test_one_line_cuts_names_and_encodes():
    assert one_line(IgpgError("a\nb  c")) == "a b c"
    assert one_line(MemoryError()) == "out of memory" and one_line(ValueError("v")) == "ValueError: v"
    long = one_line(IgpgError("y" * 10**6))
    assert len(long) == MAX_MESSAGE and long.endswith("...")
    assert one_line(IgpgError("bad \ud800")).encode("utf-8")  # printable: the surrogate is escaped
