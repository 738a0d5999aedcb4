import sys

from faceexp.cli import main

sys.exit(main())
