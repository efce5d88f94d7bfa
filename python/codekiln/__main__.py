"""``python -m codekiln``: the same command line as ``codekiln`` (needed by ``torchrun -m``)."""

import sys

from codekiln.cli import main

if __name__ == "__main__":
    sys.exit(main())
