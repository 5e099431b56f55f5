import sys

from emf_bench.cli import main

sys.exit(main())
