"""``python -m node`` runs the ``cinestrain`` CLI."""

import sys

from node.cli import main

sys.exit(main())
