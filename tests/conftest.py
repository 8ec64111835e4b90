import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "zoo" / "tiny.yaml"


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `igpg ARGS...` in-process through the real entry point (exit codes and stderr as a user sees them)."""
    from igpg.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["igpg", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


def igpg_subprocess(*args: str, **kw) -> subprocess.Popen:
    """Start the installed `igpg` console script as a real process."""
    exe = Path(sys.executable).parent / "igpg"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([str(exe), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """The tiny zoo, built once per test session (in-process, one worker)."""
    from igpg.zoo import build_zoo, load_zoo_config

    out = tmp_path_factory.mktemp("zoo") / "tiny"
    build_zoo(load_zoo_config(TINY), out)
    return out
