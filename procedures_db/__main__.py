import sys

from procedures_db.cli import main

sys.exit(main())
