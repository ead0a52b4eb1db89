"""``python -m artpulse_operator``: run the operator (the container's command).

Reads ``Settings`` for the namespaces to watch (``ARTPULSE_NAMESPACES``, empty: the whole
cluster) and the peering mode, registers the handlers by importing them and hands over to Kopf.
Kopf stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import kopf

import artpulse_operator.handlers  # noqa: F401  (registers the handlers)
from artpulse_operator.handlers import watch_gone
from artpulse_operator.settings import Settings


def main() -> None:
    cfg = Settings()
    kopf.configure(verbose=cfg.log_level == "DEBUG")
    watch_gone.install()  # a deleted CRD must not stop the operator
    # Peering details (name, priority) are set by the startup handler from the same settings.
    kopf.run(
        clusterwide=not cfg.namespaces,
        namespaces=cfg.namespaces,
        standalone=cfg.peering_name is None,
    )


if __name__ == "__main__":
    main()
