"""What a generator has learned: the architectures and datasets it trained on, and where a request sits against them.

    kind = arch_kind("mlp:64-8-3", "digits", trained)   # 'narrower'
    print(describe(trained))                            # families, widths, depths, activations, datasets

`trained` is a set of (architecture, dataset) pairs: a generator's are the keys of its generic networks (the
training architectures with all classes; `generator/base_rows.py`), which travel with every generator checkpoint.
"""

from __future__ import annotations

from collections import defaultdict

from igpg.arch import ArchSpec

KIND_TEXT = {
    "inside": "inside its range of widths and depths",
    "narrower": "narrower than any it trained on",
    "wider": "wider than any it trained on",
    "deeper": "deeper than any it trained on",
    "shallower": "shallower than any it trained on",
    "activation": "an activation it never trained on",
    "kernel": "a kernel size it never trained on",
    "family": "a family it never trained on this dataset",
    "dataset": "a dataset it never trained on",
}


def arch_kind(arch: str, dataset: str, trained: set[tuple[str, str]]) -> str:
    """Where an architecture sits against the trained ones (`trained`: (arch, dataset) pairs) of its family on its
    dataset: 'trained' (one of them, any number of outputs), 'dataset' (nothing trained on the dataset), 'family',
    'activation', 'kernel', 'deeper', 'shallower', 'wider', 'narrower' (the first that applies), else 'inside'."""
    spec = ArchSpec.parse(arch)
    if not any(d == dataset for _, d in trained):
        return "dataset"
    same = [ArchSpec.parse(a) for a, d in trained if d == dataset and a.startswith(spec.family + ":")]
    if not same:
        return "family"
    if any(s.with_outputs(spec.num_outputs) == spec for s in same):
        return "trained"
    if spec.activation not in {s.activation for s in same}:
        return "activation"
    if spec.family == "cnn" and spec.kernel not in {s.kernel for s in same}:
        return "kernel"
    depths = {s.depth for s in same}
    if spec.depth > max(depths):
        return "deeper"
    if spec.depth < min(depths):
        return "shallower"
    widths = [w for s in same for w in s.hidden]
    if max(spec.hidden) > max(widths):
        return "wider"
    if min(spec.hidden) < min(widths):
        return "narrower"
    return "inside"


def describe(trained: set[tuple[str, str]]) -> list[str]:
    """One line per dataset and family: the trained widths, depths, activations (and kernels)."""
    groups: dict[tuple[str, str], list[ArchSpec]] = defaultdict(list)
    for a, d in trained:
        spec = ArchSpec.parse(a)
        groups[(d, spec.family)].append(spec)
    lines = []
    for (d, fam), specs in sorted(groups.items()):
        widths = sorted({w for s in specs for w in s.hidden})
        depths = sorted({s.depth for s in specs})
        acts = sorted({s.activation for s in specs})
        line = (f"{d} {fam}: widths {_span(widths)}, depths {_span(depths)}, activation {', '.join(acts)}; "
                f"{len(specs)} architectures ({', '.join(sorted(str(s.with_outputs(2)).rsplit('-', 1)[0] for s in specs))})")
        if fam == "cnn":
            line = line.replace("; ", f", kernel {', '.join(str(k) for k in sorted({s.kernel for s in specs}))}; ", 1)
        lines.append(line)
    return lines


def _span(values: list[int]) -> str:
    return ", ".join(map(str, values))
