"""``python -m kubectl_artpulse``: the same as the ``kubectl-artpulse`` command."""

import sys

from kubectl_artpulse.cli import main

sys.exit(main())
