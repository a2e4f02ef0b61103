"""``python -m cinestrain`` runs the ``cinestrain`` CLI."""

import sys

from cinestrain.node.cli import main

sys.exit(main())
