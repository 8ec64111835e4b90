"""The conditional autoregressive generator: conditions -> row codes -> a working network."""

from igpg.generator.api import ParameterGenerator
from igpg.generator.model import GeneratorConfig, WeightGenerator
from igpg.generator.sample import SamplingConfig

__all__ = ["GeneratorConfig", "ParameterGenerator", "SamplingConfig", "WeightGenerator"]
