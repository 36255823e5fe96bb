"""`python -m experiments.fashion.study`: the results report."""

import sys

from .cli import main

sys.exit(main())
