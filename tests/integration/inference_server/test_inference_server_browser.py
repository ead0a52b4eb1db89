"""The landing page's try-it flow and the ops panel in a real browser (headless chromium).

Screenshots are checked to be real renderings (not blank) and kept in the test's
temporary directory for a human to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inference_server_helpers import (
    Browser,
    RegisteredModels,
    ServerProcess,
    make_image,
    registered_models,
)
from PIL import Image

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("chromedriver") is None, reason="apt-get install -y chromium chromium-driver"
    ),
]

API_KEY = "browser-test-api-key-0123456789"
OPS_API_KEY = "browser-test-ops-key-9876543210"
SCREENSHOTS = os.environ.get("ARTPULSE_SCREENSHOT_DIR")


@pytest.fixture(scope="module")
def models(mlflow_server: Any) -> RegisteredModels:
    return registered_models(mlflow_server.tracking_uri)


@pytest.fixture(scope="module")
def server(models: RegisteredModels, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("browser-server")
    env = {
        "ENVIRONMENT": "production",
        "MODEL_URI": models.uri(models.v1),
        "MODEL_NAME": models.name,
        "MODEL_VERSION": models.v1,
        "ARTPULSE_TRACK": "stable",
        "MLFLOW_TRACKING_URI": models.tracking_uri,
        "API_KEYS": API_KEY,
        "OPS_API_KEYS": OPS_API_KEY,
        "DEMO_JWK_CURRENT_KID": "2026-11",
        "DEMO_JWK_KEYS_JSON": json.dumps({"2026-11": "browser-demo-key-0123456789abcdef"}),
        "DRIFT_HISTORY_PATH": str(tmp / "drift.jsonl"),
        "DRIFT_INTERVAL_SECONDS": "0.5",
        "DRIFT_MIN_SAMPLES": "1",
    }
    with ServerProcess(env, tmp / "server.log").start() as proc:
        yield proc


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    b = Browser(tmp_path)
    try:
        yield b
    finally:
        b.close()


def assert_rendered(png: Path) -> None:
    """A real page: right size, many distinct colours, not one flat colour."""
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[0] >= 600, image.shape
    assert image.shape[1] >= 1000, image.shape
    assert image.std() > 20
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(SCREENSHOTS) / png.name)


def test_landing_page_try_it_flow(
    server: ServerProcess, browser: Browser, models: RegisteredModels, tmp_path: Path
) -> None:
    browser.get(server.url + "/")
    browser.wait_text("#model-version", lambda t: t == models.v1, "metadata loaded")
    browser.click("#btn-token")
    browser.wait_text("#token-state", lambda t: "token ready (key 2026-11)" in t, "demo token")
    browser.click("#btn-status")
    status = browser.wait_text("#status-state", lambda t: t.startswith("ready:"), "status")
    assert f"v{models.v1}" in status
    browser.click("#btn-predict-rows")
    label = browser.wait_text("#prediction-label", bool, "prediction from rows")
    assert label in {"impressionism", "minimalism", "pop_art"}
    image = make_image(tmp_path / "upload.jpg", "JPEG", seed=4)
    browser.type("#image-file", str(image))
    browser.script("document.getElementById('result').textContent = '';")
    browser.click("#btn-predict-image")
    shown = browser.wait_text("#result", bool, "an answer to the image upload", timeout=60)
    assert browser.text("#prediction-label") in {"impressionism", "minimalism", "pop_art"}, shown
    raw = json.loads(browser.text("#raw"))
    assert set(raw["features"]) >= {"hue_mean", "edge_density"}
    assert_rendered(browser.screenshot(tmp_path / "landing.png"))


def test_landing_page_shows_bad_input_errors(server: ServerProcess, browser: Browser) -> None:
    browser.get(server.url + "/")
    browser.wait_text("#model-version", bool, "metadata")
    browser.click("#btn-token")
    browser.wait_text("#token-state", lambda t: "token ready" in t, "demo token")
    browser.script('document.getElementById(\'rows\').value = \'{"rows": [{"hue_mean": "red"}]}\';')
    browser.click("#btn-predict-rows")
    error = browser.wait_text("#prediction-error", bool, "error shown")
    assert error.startswith("HTTP 422")
    assert "row 0" in error


def test_admin_panel_signs_in_and_shows_the_model(
    server: ServerProcess, browser: Browser, models: RegisteredModels, tmp_path: Path
) -> None:
    import httpx

    httpx.post(
        server.url + "/predict",
        json={
            "rows": [
                dict.fromkeys(
                    json.loads(httpx.get(server.url + "/metadata").text)["model"]["feature_names"],
                    0.4,
                )
            ]
        },
        headers={"x-api-key": API_KEY},
    )
    browser.get(server.url + "/admin")
    browser.wait_text("#login", lambda t: "Sign in" in t, "login form")
    assert_rendered(browser.screenshot(tmp_path / "admin-login.png"))
    browser.type("#api-key", "wrong-key-0123456789")
    browser.click("#login-form button")
    browser.wait_text("#login-error", lambda t: "invalid API key" in t, "refusal shown")
    # A predict key is refused by the panel: ops needs the ops key.
    browser.type("#api-key", API_KEY)
    browser.click("#login-form button")
    browser.wait_text("#login-error", lambda t: "needs an ops credential" in t, "scope refusal")
    browser.type("#api-key", OPS_API_KEY)
    browser.click("#login-form button")
    browser.wait_text("#m-version", lambda t: t == models.v1, "panel shows the version")
    assert browser.text("#m-track") == "stable"
    assert browser.text("#m-ready") == "ready"
    browser.wait_text("#d-score", lambda t: t not in ("-", ""), "drift figure")
    assert browser.text("#t-quality") == "passed"
    assert browser.text("#who").startswith("key:")
    browser.click("#btn-reload")
    browser.wait_text(
        "#reload-state", lambda t: t.startswith(f"serving v{models.v1}"), "reload done"
    )
    assert_rendered(browser.screenshot(tmp_path / "admin.png"))
    # The key handed over in the fragment signs a fresh tab in, and leaves the address bar.
    browser.script("sessionStorage.clear();")
    browser.get(server.url + "/")
    browser.get(server.url + f"/admin#key={OPS_API_KEY}")
    browser.wait_text("#m-version", lambda t: t == models.v1, "fragment sign-in")
    assert OPS_API_KEY not in browser.script("return window.location.href;")
    # Signing out returns to the form.
    browser.click("#logout")
    browser.wait_text("#login", lambda t: "Sign in" in t, "signed out")
    assert browser.script("return sessionStorage.getItem('artpulse.apiKey');") is None


def test_chromium_cli_screenshot_and_dom_dump(server: ServerProcess, tmp_path: Path) -> None:
    """The plain CLI way (--screenshot, --dump-dom) also renders the landing page."""
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900", "--virtual-time-budget=5000"]  # fmt: skip
    shot = tmp_path / "landing-cli.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", server.url + "/"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert_rendered(shot)
    dom = subprocess.run(
        [*flags, "--dump-dom", server.url + "/"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'id="btn-token"' in dom
    assert '"hue_mean"' in dom  # the sample rows were filled in from /metadata by the script
