"""``python -m cinestrain`` runs the ``cinestrain`` CLI."""

import sys

from cinestrain.cli.main import main

sys.exit(main())
