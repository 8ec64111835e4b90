"""The README's code blocks run as written (README examples are tests).

Blocks run in README order in one scratch folder (where `configs/` is the repository's), Python blocks sharing one
namespace as a reader continuing the examples would. A block is marked by the HTML comment just above it:
`readme-test: runs` (run as is), `readme-test: needs-zoo` (run after the tiny zoo is in `zoos/tiny`: the test
builds it, once per session) or `readme-test: dry-run` (`make` targets, which set up a venv and run the suite
itself: checked with `make -n`, and the demo's own command is run by the CLI block). `text` blocks are not code.
"""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>[a-z-]+) -->\n)?^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$",
                   re.S | re.M)
MARKS = {"runs", "needs-zoo", "dry-run"}


def blocks() -> list[tuple[str | None, str, str]]:
    return [(m["mark"], m["lang"], m["body"]) for m in BLOCK.finditer(README.read_text())]


def commands(body: str) -> list[list[str]]:
    """Shell lines (backslash continuations joined, comments dropped) as argument lists."""
    return [argv for line in body.replace("\\\n", " ").splitlines() if (argv := shlex.split(line, comments=True))]


def test_every_code_block_is_marked():
    found = blocks()
    assert len(found) >= 6
    for mark, lang, body in found:
        if lang == "text":
            assert mark is None  # a diagram or a listing, not something to run
            continue
        assert lang in ("bash", "python") and mark in MARKS, (mark, lang, body[:80])
        if lang == "bash":
            tool = "make" if mark == "dry-run" else "igpg"
            assert all(argv[0] == tool for argv in commands(body)), body  # nothing the test cannot run


def test_readme_runs_as_written(tiny_zoo, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    namespace: dict = {"__name__": "readme"}
    ran = 0
    for mark, lang, body in blocks():
        if lang == "text":
            continue
        if mark == "needs-zoo" and not (tmp_path / "zoos" / "tiny").exists():
            shutil.copytree(tiny_zoo, tmp_path / "zoos" / "tiny")  # a copy: retrieval adds its index to the zoo
        if lang == "python":
            exec(compile(body, str(README), "exec"), namespace)
        elif mark == "dry-run":
            for argv in commands(body):
                proc = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr
        else:
            for argv in commands(body):
                res = cli(*argv[1:])
                assert res.code == 0, (argv, res.err)
        ran += 1
    assert ran == len([b for b in blocks() if b[1] != "text"])
    # what the blocks promise, checked
    assert (tmp_path / "net.safetensors").is_file() and (tmp_path / "exported" / "manifest.jsonl").is_file()
    assert (tmp_path / "runs" / "gen" / "config.json").is_file()
    assert (tmp_path / "runs" / "tok-mine" / "codes").is_dir()


def test_make_demo_runs_the_readme_generate_command():
    """`make demo` is the README's first generate command (with best-of-8 where the README decodes greedily), so
    the CLI block above exercises it."""
    demo = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    first = next(b for b in blocks() if b[1] == "bash" and b[0] == "runs")
    readme_cmd = commands(first[2])[0]
    demo_cmd = next(shlex.split(line) for line in demo.replace("\\\n", " ").splitlines() if " generate " in line)
    assert _without(readme_cmd[1:]) == _without(demo_cmd[1:])


def _without(argv: list[str], options=("--samples", "--out"), flags=("--overwrite",)) -> list[str]:
    """argv less the options (with their values) and flags that differ between the README and `make demo`."""
    out, skip = [], False
    for a in argv:
        if skip or a in flags:
            skip = False
            continue
        skip = a in options
        if not skip:
            out.append(a)
    return out
