"""Sub-commands of the ``cinestrain`` CLI (see :mod:`cli.main`)."""
