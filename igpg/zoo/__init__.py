"""Model zoos: config -> plan -> trained networks in safetensors + an SQLite catalogue with split flags."""

from igpg.zoo.builder import BuildReport, ZooPlan, build_zoo, plan_zoo
from igpg.zoo.catalogue import Catalogue
from igpg.zoo.config import INIT_MODES, ZooConfig, load_zoo_config, parse_zoo_config
from igpg.zoo.importer import ImportReport, import_zoo
from igpg.zoo.info import zoo_summary

__all__ = ["BuildReport", "Catalogue", "INIT_MODES", "ImportReport", "ZooConfig", "ZooPlan", "build_zoo",
           "import_zoo", "load_zoo_config", "parse_zoo_config", "plan_zoo", "zoo_summary"]
