"""``python -m durable``: the ``durable`` command."""

import sys

from durable.cli import main

if __name__ == "__main__":
    sys.exit(main())
