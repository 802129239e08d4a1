"""`python -m xpnet` runs the xpnet command."""
import sys

from .cli.app import main

sys.exit(main())
