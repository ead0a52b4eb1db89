"""The ArtPulse inference server (FastAPI): ``create_app(settings)``; run with ``artpulse-server``."""

from .app import create_app
from .settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "create_app", "load_settings"]
