"""Errors the ``artpulse`` CLI turns into one line on stderr and a non-zero exit code."""

from __future__ import annotations


class ArtpulseError(Exception):
    """Base class: the message is shown to the user as is, in one line."""

    exit_code = 1


class DatasetError(ArtpulseError):
    """A missing or empty dataset directory, or an image that cannot be read."""


class QualityGateError(ArtpulseError):
    """The data-quality gate refused the dataset."""

    exit_code = 3


class MlflowUnavailableError(ArtpulseError):
    """MLflow could not be reached or answered with an error."""

    exit_code = 4


class DriftInputError(ArtpulseError):
    """The recent-inputs file or the baseline cannot be used."""
