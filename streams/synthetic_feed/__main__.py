"""Write a synthetic feed from the command line: ``python -m streams.synthetic_feed``."""

import sys

from streams.synthetic_feed import main

sys.exit(main())
