"""igpg: generate the weights of whole neural networks from an instruction, a few labelled samples and an
architecture (IGPG, Instruction-Guided autoregressive Parameter Generation, arXiv 2504.02012).

    import igpg
    ds = igpg.load_dataset("digits")           # .train / .val / .test, each with x (N, D) float32 and y (N,) int64
    spec = igpg.ArchSpec.parse("mlp:64-32-3")   # str(spec) == "mlp:64-32-3"
    net = spec.build()                          # a torch.nn.Module taking flat (B, 64) inputs
    acc = igpg.evaluate(net, dataset="digits", classes=[3, 5, 8], split="test")

Every name is imported on first use (PEP 562), so `import igpg` and the CLI's `--help` do not load torch.
"""

from igpg.errors import IgpgError

__version__ = "0.1.0"

_LAZY = {  # public name -> the module that defines it
    "ArchSpec": "igpg.arch",
    "Dataset": "igpg.data", "Task": "igpg.data", "labels_from_instruction": "igpg.data", "list_datasets": "igpg.data",
    "load_dataset": "igpg.data",
    "evaluate": "igpg.evaluation.accuracy",
    "ExportRequest": "igpg.export", "export_networks": "igpg.export", "load": "igpg.export",
    "parse_requests": "igpg.export", "read_metadata": "igpg.export",
    "ParameterGenerator": "igpg.generator",  # pulls in x-transformers and sentence-transformers
    "SamplingConfig": "igpg.generator",
    "import_zoo": "igpg.zoo.importer",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'igpg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["ArchSpec", "Dataset", "ExportRequest", "IgpgError", "ParameterGenerator", "SamplingConfig", "Task", "evaluate",
           "export_networks", "import_zoo", "labels_from_instruction", "list_datasets", "load", "load_dataset",
           "parse_requests", "read_metadata"]
