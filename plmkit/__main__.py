"""`python -m plmkit` runs the command-line interface."""

import sys

from plmkit.cli import main

sys.exit(main())
