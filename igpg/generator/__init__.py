"""The conditional autoregressive generator: conditions -> row codes -> a working network."""

from igpg.generator.api import ParameterGenerator
from igpg.generator.config import GeneratorConfig, ModelConfig, TrainConfig
from igpg.generator.model import WeightGenerator
from igpg.generator.sample import SamplingConfig

__all__ = ["GeneratorConfig", "ModelConfig", "ParameterGenerator", "SamplingConfig", "TrainConfig", "WeightGenerator"]
