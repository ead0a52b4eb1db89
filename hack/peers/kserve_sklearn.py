"""The "kserve" peer: KServe's own model server (the `kserve` package from PyPI) serving a
scikit-learn estimator from ``model.joblib``, run by the benchmark and the conformance
tests, never by ArtPulse.

KServe's sklearnserver is not published on PyPI (KServe builds it into its images), so
this file does what that runtime does with the package's public API: a ``kserve.Model``
that loads the joblib file, turns the request into numpy with ``get_predict_input``,
calls ``predict`` (or ``predict_proba`` with ``PREDICT_PROBA=true``) and answers with
``get_predict_response``; ``kserve.ModelServer`` serves it (v1 and OIP v2 REST). Runs
in the peers' kserve venv (``hack/peers.sh``):

    python hack/peers/kserve_sklearn.py --model_dir DIR --model_name NAME --http_port N
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import joblib
import kserve
from kserve import logging as kserve_logging
from kserve.model_server import parser as kserve_parser
from kserve.utils.utils import get_predict_input, get_predict_response


class SklearnPeer(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: Path, *, predict_proba: bool) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.predict_proba = predict_proba
        self.estimator: Any = None

    def load(self) -> bool:
        self.estimator = joblib.load(self.model_dir / "model.joblib")
        self.ready = True
        return True

    def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        rows = get_predict_input(payload)
        answer = (
            self.estimator.predict_proba(rows)
            if self.predict_proba
            else self.estimator.predict(rows)
        )
        return get_predict_response(payload, answer, self.name)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve_parser])
    parser.add_argument("--model_dir", required=True, type=Path)
    args, _ = parser.parse_known_args()
    if args.configure_logging:
        kserve_logging.configure_logging(args.log_config_file)
    predict_proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true"
    model = SklearnPeer(args.model_name, args.model_dir, predict_proba=predict_proba)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
