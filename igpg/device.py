"""Which device a model runs on: `--device auto|cpu|cuda|mps` on the command line, `device=` in the API.

    resolve_device("auto")    # cuda if present, else mps if present, else cpu
    resolve_device("cuda:1")  # that GPU; an error (one line) if this machine has none
"""

from __future__ import annotations

import torch

from igpg.errors import IgpgError

DEVICES = ("auto", "cpu", "cuda", "mps")  # what --device accepts (cuda:N too)


def available(kind: str) -> bool:
    """Whether this machine can run on a device of `kind` (cpu, cuda, mps)."""
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return kind == "cpu"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """A torch.device for `device` ("auto" or None: the best one present); a device this machine lacks, or a name
    that is not a device, is an `IgpgError`."""
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        return torch.device(next(kind for kind in ("cuda", "mps", "cpu") if available(kind)))
    kind, _, index = str(device).partition(":")
    if kind not in DEVICES[1:] or (index and not index.isdigit()):
        raise IgpgError(f"unknown device {device!r}; use one of {', '.join(DEVICES)} (or cuda:N)")
    if not available(kind):
        raise IgpgError(f"device {device!r} is not available on this machine; use --device cpu (or auto)")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise IgpgError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)
