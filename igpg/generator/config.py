"""The generator's config: what the model is (`ModelConfig`, defaults = the released model), how it is trained
(`TrainConfig`, defaults = the released recipe) and the code format it reads and writes (`CodeFormat`, taken from
the tokenizer when training starts, never set by hand). `GeneratorConfig` holds the three; a recipe
(configs/generator/*.yaml) sets `model:` and `train:` keys, a checkpoint's config.json records all three.

    cfg = load_generator_config("configs/generator/default.yaml", overrides=["train.lr=3e-4", "model.dim=256"])
    cfg.model.dim, cfg.train.lr          # what a recipe or --set writes, and how the code reads it
    cfg.codes.vocab                      # once training has started (a recipe's `codes` is None)
    cfg.override({"train.steps": 10})    # a validated copy with dotted keys changed

Every field's comment says why it is there; the figures behind the released values are in
igpg/pretrained/default/CARD.md and eval/results/generator-ablation.md.
"""

from __future__ import annotations

from pydantic import Field

from igpg.config import Config, Fraction


class ModelConfig(Config):
    """What builds the module: `WeightGenerator(cfg)` depends on these (and on the `CodeFormat`) alone."""

    what = "generator"
    dim: int = Field(192, ge=1, le=4096)  # D: transformer width
    depth: int = Field(4, ge=1, le=64)  # transformer layers
    heads: int = Field(4, ge=1, le=64)  # attention heads (dim must divide by them)
    slot_dim: int = Field(128, ge=1, le=4096)  # E: width of the code embeddings and of the slot head
    max_row_index: int = Field(2048, ge=1, le=2**20)  # learned neuron-index embeddings (larger indices wrap)
    max_layers: int = Field(16, ge=1, le=1024)  # learned layer embeddings: the deepest network it can write
    max_chunks_per_row: int = Field(512, ge=1, le=2**16)  # learned chunk-position embeddings: the widest row
    max_seq_len: int = Field(1024, ge=1, le=2**16)  # rows per attention window; longer networks decode in windows
    class_embedding: bool = True  # a learned (dataset, class) embedding on each label token: the zoo's classes recur
    class_slots: int = Field(4096, ge=1, le=2**20)  # hashed (dataset, class) table size
    row_keys: int = Field(8192, ge=0, le=2**20)  # hashed learned row keys, a direct address for rows the zoo shares (0 = off)
    base_rows: bool = True  # each row sees the same row of the request's generic network: copy what the zoo kept
    compositional: bool = True  # row keys by (family, input, layer, neuron): shared by the architectures of a lineage zoo
    k_support: int = Field(5, ge=1, le=1000)  # labelled samples per label the label tokens are built from
    families: tuple[str, ...] = ("mlp", "cnn")  # architecture families it writes (a request of another is refused)
    max_depth: dict[str, int] = Field(default_factory=lambda: {"mlp": 8, "cnn": 6})  # deepest request per family


class TrainConfig(Config):
    """How the generator is trained: none of these changes the module's shapes."""

    what = "generator"
    steps: int = Field(3000, ge=1)  # 6000 was slightly worse on every split with a base
    batch_size: int = Field(16, ge=1)  # networks per step
    lr: float = Field(8e-4, ge=0)  # AdamW peak learning rate (cosine to 10% after the warmup)
    warmup: int = Field(100, ge=0)  # linear warmup steps
    weight_decay: float = Field(0.01, ge=0)  # AdamW, on matrices only (not embeddings, norms, biases)
    seed: int = Field(0, ge=0)  # model init and every draw (networks, phrasings, support sets, dropouts)
    log_every: int = Field(50, ge=1)  # steps per metrics.jsonl line
    checkpoint_every: int = Field(250, ge=1)  # steps per resumable checkpoint
    loss_chunks: int = Field(2048, ge=1)  # chunks per step whose codes enter the loss: the slot head dominates cost
    head_loss_weight: float = Field(4.0, gt=0)  # != 1: every output-row chunk enters the loss at this weight
    dropout: float = Field(0.0, ge=0, le=1)  # attention and feed-forward dropout
    cond_dropout: Fraction = 0.1  # labels dropped this often: the unconditional half of classifier-free guidance
    instr_dropout: Fraction = 0.3  # instruction dropped alone this often: lean on the labels and samples
    base_dropout: Fraction = 0.1  # base withheld this often, so that a request without one still decodes
    sibling_bases: Fraction = 0.3  # share of draws based on another architecture's generic network, as new ones are
    probe_targets: bool = True  # a grouped task's network is replaced by its probe twin (zoo `probes`): output rows
    # that fit the generic hidden layers the decoder keeps
    exclude_datasets: tuple[str, ...] = ()  # leave-one-dataset-out: recorded, so the evaluation can check it


class CodeFormat(Config):
    """The tokenizer's code format, read from it when training starts and recorded to rebuild the model."""

    what = "generator"
    vocab: int = Field(ge=1, le=2**16)  # V: values one code takes
    codes_per_chunk: int = Field(ge=1, le=64)  # Q: codes per chunk (residual levels)
    chunk_size: int = Field(ge=1, le=4096)  # weights per chunk
    tokenizer: str = ""  # the tokenizer directory's name (a name, never a path)
    side_tokens: bool = False  # layer_std normalisation: one scale token per layer to emit

    @classmethod
    def of(cls, tok, name: str) -> CodeFormat:
        """The code format of a `WeightTokenizer` saved in a directory called `name`."""
        return cls(vocab=tok.cfg.model.vocab_size, codes_per_chunk=tok.cfg.model.codes_per_chunk,
                   chunk_size=tok.cfg.model.chunk_size, tokenizer=name, side_tokens=tok.cfg.model.normalisation == "layer_std")


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "codes": CodeFormat}


class GeneratorConfig(Config):
    """A recipe (`model` + `train`) or, once training has started, a trained model's full config (+ `codes`).

    Each field is read through its section: `cfg.model.dim`, `cfg.train.lr`, `cfg.codes.vocab`."""

    what = "generator"
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    codes: CodeFormat | None = None  # None in a recipe: the tokenizer decides when training starts
