"""A real ``artpulse-server`` process serving the trained test model (no MLflow).

Started by ``security_traffic_helpers.server_process``. Settings come from the
environment exactly as in a pod; the process then runs ``__main__.configure_logging``
and ``__main__.serve``, the same logging and uvicorn options as ``artpulse-server``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artpulse_inference.server.__main__ import configure_logging, serve
from artpulse_inference.server.app import create_app
from artpulse_inference.server.settings import load_settings
from security_traffic_helpers import TrainedLoader

if __name__ == "__main__":
    settings = load_settings()
    configure_logging(settings.log_level)
    serve(create_app(settings, loader=TrainedLoader()), settings)
