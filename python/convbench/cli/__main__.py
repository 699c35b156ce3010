"""`python -m convbench.cli ...`, the same as the `convbench` command."""

import sys

from . import main

sys.exit(main())
