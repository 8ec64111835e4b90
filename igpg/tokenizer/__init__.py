"""The weight tokenizer: networks -> row-aligned chunks of normalised weights (chunking.py) -> discrete codes."""

from igpg.tokenizer.chunking import (
    LAYER_KINDS,
    NORMALISATIONS,
    NUM_POSITION_FEATURES,
    POSITION_FEATURES,
    Chunked,
    ChunkLayout,
    chunk_layout,
    chunk_network,
    count_chunks,
    layer_scales,
    unchunk,
)

__all__ = ["LAYER_KINDS", "NORMALISATIONS", "NUM_POSITION_FEATURES", "POSITION_FEATURES", "ChunkLayout", "Chunked",
           "chunk_layout", "chunk_network", "count_chunks", "layer_scales", "unchunk"]

from igpg.tokenizer.model import (  # noqa: E402
    TokenizerConfig,
    TokenizerModelConfig,
    TokenizerTrainConfig,
    WeightVQVAE,
)
from igpg.tokenizer.tokenizer import Codes, WeightTokenizer, config_from_dict  # noqa: E402

__all__ += ["Codes", "TokenizerConfig", "TokenizerModelConfig", "TokenizerTrainConfig", "WeightTokenizer", "WeightVQVAE",
            "config_from_dict"]
