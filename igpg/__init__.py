"""igpg: generate the weights of whole neural networks from an instruction, a few labelled samples and an
architecture (IGPG, Instruction-Guided autoregressive Parameter Generation, arXiv 2504.02012).

    import igpg
    ds = igpg.load_dataset("digits")           # .train / .val / .test, each with x (N, D) float32 and y (N,) int64
    spec = igpg.ArchSpec.parse("mlp:64-32-3")   # str(spec) == "mlp:64-32-3"
    net = spec.build()                          # a torch.nn.Module taking flat (B, 64) inputs
    acc = igpg.evaluate(net, dataset="digits", classes=[3, 5, 8], split="test")
"""

from igpg.arch import ArchSpec, parse_arch
from igpg.data import Dataset, Task, list_datasets, load_dataset
from igpg.errors import IgpgError
from igpg.evaluate import evaluate
from igpg.export import ExportRequest, export_networks, load, parse_requests, read_metadata

__version__ = "0.1.0"


def __getattr__(name: str):
    # the generator pulls in x-transformers and sentence-transformers: imported on first use, not with igpg
    if name == "ParameterGenerator":
        from igpg.generator import ParameterGenerator

        return ParameterGenerator
    raise AttributeError(f"module 'igpg' has no attribute {name!r}")

__all__ = ["ArchSpec", "Dataset", "ExportRequest", "IgpgError", "ParameterGenerator", "Task", "evaluate",
           "export_networks", "list_datasets", "load", "load_dataset", "parse_arch", "parse_requests", "read_metadata"]
