"""`python -m xpnet` runs the xpnet command."""
import sys

from .cli import main

sys.exit(main())
