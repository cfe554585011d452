"""Entry point: `python main.py --help`. Parses arguments and hands over to the engine's CLI."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
