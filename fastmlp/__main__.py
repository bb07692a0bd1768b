"""``python -m fastmlp`` runs the command line."""

import sys

from fastmlp.cli import main

sys.exit(main())
