"""Node configuration: one validated schema, loaded from one TOML file.

>>> from config import load_config
>>> cfg = load_config()          # the embedded defaults (runs out of the box)
>>> cfg.node.ae_title
'CINESTRAIN'
"""

from cinestrain.config.load import ConfigError, default_config_path, load_config
from cinestrain.config.schema import (
    AllowedCaller,
    DicomDestination,
    DicomWebDestination,
    FolderDestination,
    ModelSettings,
    NodeConfig,
)

__all__ = [
    "AllowedCaller",
    "ConfigError",
    "DicomDestination",
    "DicomWebDestination",
    "FolderDestination",
    "ModelSettings",
    "NodeConfig",
    "default_config_path",
    "load_config",
]
