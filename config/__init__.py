"""Node configuration: one validated schema, loaded from one TOML file.

>>> from config import load_config
>>> cfg = load_config()          # the embedded defaults (runs out of the box)
>>> cfg.node.ae_title
'CINESTRAIN'
"""

from config.load import ConfigError, default_config_path, load_config
from config.schema import (
    AllowedCaller,
    DicomDestination,
    FolderDestination,
    ModelSettings,
    NodeConfig,
)

__version__ = "0.1.0"

__all__ = [
    "AllowedCaller",
    "ConfigError",
    "DicomDestination",
    "FolderDestination",
    "ModelSettings",
    "NodeConfig",
    "__version__",
    "default_config_path",
    "load_config",
]
