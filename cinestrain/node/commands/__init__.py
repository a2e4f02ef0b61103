"""Sub-commands of the ``cinestrain`` CLI (see :mod:`node.cli`)."""
