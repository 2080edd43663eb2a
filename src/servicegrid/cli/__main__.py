"""``python -m servicegrid.cli``: the same as the ``servicegrid`` command."""

from servicegrid.cli import main

main()
