"""`python -m loadtests run [--quick | --smoke] [--only NAME ...] [--out DIR]`: see loadtests/README.md."""

import sys

from loadtests.runner import main

sys.exit(main(sys.argv[1:]))
