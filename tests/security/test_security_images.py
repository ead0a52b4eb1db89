"""Finding 2: memory amplification through /predict-image and the public /demo/predict.

Each hostile image is built here (PNG chunks with zlib, JPEG markers, Pillow) and POSTed
for real to the app (TestClient, the real routers, auth and decoder); the model is a
stand-in loaded through ``create_app(loader=...)``, since what is under attack is the
decode in front of it. Today's server decoded a 154 KB 6300x6300 RGBA PNG at full size
(about 750 MB with the compositing) and answered 200; here it is refused with 413 before
Pillow's ``load()`` runs, naming its dimensions and the budget.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from artpulse_inference.core.features import FEATURE_NAMES, decode_image, extract_features
from artpulse_inference.core.image_budget import (
    decode_cost,
    full_size_modes,
    progressive_jpeg_coefficient_bytes,
    reduction_factor,
)
from artpulse_inference.server import Settings, create_app
from artpulse_inference.server.model_store import LoadedModel, Prediction
from fastapi.testclient import TestClient
from PIL import Image, ImageFile
from security_images_hostile import (
    GREY,
    PALETTE,
    RGB,
    RGBA,
    actl,
    encode,
    fctl,
    iccp_bomb,
    jpeg_header,
    lying_png,
    photo,
    worst_inputs,
    zero_png,
    ztxt_bombs,
)

API_KEY = "images-security-api-key-0123456789"
DEMO_KEY = "images-security-demo-key-0123456789abcdef"
BUDGET = 48 * 1024 * 1024
BUDGET_TEXT = f"the budget is {BUDGET:,} bytes"


class StandInLoader:
    """Loads a model that labels an image 'bright' when its value_mean is above 0.5."""

    def load(self, uri: str) -> LoadedModel:
        value = FEATURE_NAMES.index("value_mean")

        def predict(X: np.ndarray) -> Prediction:
            p = np.clip(X[:, value], 0.0, 1.0)
            labels = ["bright" if v > 0.5 else "dark" for v in p]
            return Prediction(labels, np.stack([1 - p, p], axis=1))

        return LoadedModel(
            uri=uri, name="art", version="1", alias="", run_id="r", flavor="stand-in",
            feature_names=FEATURE_NAMES, classes=("dark", "bright"), predict=predict,
            loaded_at=time.time(), load_seconds=0.0,
        )  # fmt: skip


def make_settings(**over: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "api_keys": API_KEY,
        "demo_jwk_current_kid": "k1",
        "demo_jwk_keys_json": json.dumps({"k1": DEMO_KEY}),
        "model_uri": "models:/art/1",
        "model_name": "art",
        "model_version": "1",
        # The limiters are other findings' business; here every request must reach the decoder.
        "demo_rate_limit_per_minute": 0,
        "demo_token_rate_limit_per_minute": 0,
        "auth_failure_limit_per_minute": 0,
        "drift_history_path": "/dev/null",
    }
    return Settings(**(values | over))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Server:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.state = client.app.state.artpulse  # type: ignore[attr-defined]
        token = client.post("/demo/token")
        assert token.status_code == 200, token.text
        self.demo_auth = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def post(self, endpoint: str, data: bytes, content_type: str = "image/png") -> Any:
        if endpoint == "/predict-image":
            headers = {"x-api-key": API_KEY}
            return self.client.post(
                endpoint, files={"file": ("upload", data, content_type)}, headers=headers
            )
        headers = self.demo_auth | {"Content-Type": content_type}
        return self.client.post(endpoint, content=data, headers=headers)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    app = create_app(make_settings(), loader=StandInLoader())
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_for(lambda: client.get("/ready").status_code == 200, 60, "the stand-in model")
        yield Server(client)


ENDPOINTS = ["/predict-image", "/demo/predict"]


# ---- over the budget: 413 naming the dimensions and the budget --------------------------

OVER_BUDGET: dict[str, tuple[Callable[[], bytes], str]] = {
    "rgba-6300x6300": (lambda: worst_inputs()["png-rgba-6300x6300"], "6300x6300 PNG in mode RGBA"),
    "1bit-6000x6000": (lambda: worst_inputs()["png-1bit-6000x6000"], "6000x6000 PNG in mode 1"),
    "palette-5000x5000": (
        lambda: zero_png(5000, 5000, color_type=PALETTE),
        "5000x5000 PNG in mode P",
    ),
    "palette-transparent-4000x4000": (
        lambda: worst_inputs()["png-palette-transparent-4000x4000"],
        "4000x4000 PNG in mode P",
    ),
    "grey-16bit-6000x6000": (
        lambda: worst_inputs()["png-16bit-grey-6000x6000"],
        "6000x6000 PNG in mode I;16",
    ),
    "rgb-16bit-4000x4000": (
        lambda: zero_png(4000, 4000, depth=16, color_type=RGB),
        "4000x4000 PNG in mode RGB",
    ),
    "grey-alpha-4000x4000": (
        lambda: zero_png(4000, 4000, color_type=4),
        "4000x4000 PNG in mode LA",
    ),
    "interlaced-rgba-6000x6000": (
        lambda: worst_inputs()["png-interlaced-rgba-6000x6000"],
        "6000x6000 PNG in mode RGBA",
    ),
    "progressive-jpeg-6000x6000": (
        lambda: worst_inputs()["jpeg-progressive-6000x6000"],
        "6000x6000 JPEG (decoded at 750x750) in mode RGB",
    ),
    "progressive-cmyk-jpeg-4000x4000": (
        lambda: jpeg_header(4000, 4000, progressive=True, components=4),
        "4000x4000 JPEG (decoded at 500x500) in mode CMYK",
    ),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", list(OVER_BUDGET), ids=list(OVER_BUDGET))
def test_an_image_over_the_decode_budget_is_refused_with_its_dimensions(
    server: Server, endpoint: str, case: str
) -> None:
    make, described = OVER_BUDGET[case]
    data = make()
    assert len(data) < 200_000  # tiny on the wire: the amplification is the attack
    content_type = "image/jpeg" if "jpeg" in case else "image/png"
    response = server.post(endpoint, data, content_type)
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert described in detail
    assert BUDGET_TEXT in detail
    assert "MAX_IMAGE_DECODED_BYTES" in detail


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_header_beyond_pillows_own_bomb_limit_is_a_413_not_a_500(
    server: Server, endpoint: str
) -> None:
    # 20000x20000 1-bit: 48 KB on the wire, 400 MB decoded; over twice MAX_IMAGE_PIXELS,
    # so Pillow's own DecompressionBombError fires inside Image.open.
    data = zero_png(20_000, 20_000, depth=1, color_type=GREY)
    response = server.post(endpoint, data)
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "400000000 pixels" in detail
    assert "MAX_IMAGE_PIXELS" in detail


def test_the_budget_is_checked_before_any_pixel_is_decoded(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        loads.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    for data in worst_inputs().values():
        for endpoint in ENDPOINTS:
            assert server.post(endpoint, data).status_code == 413
    assert loads == [], f"load() ran for an over-budget image: {loads}"
    # The spy is wired: an ordinary image is loaded through it.
    assert server.post("/predict-image", encode(photo(), "PNG")).status_code == 200
    assert loads
    assert set(loads) == {(640, 480)}


# ---- refused for what they are: 422 -------------------------------------------------------

REFUSED: dict[str, tuple[Callable[[], bytes], str]] = {
    "apng-1000-frames": (
        lambda: zero_png(64, 64, before_idat=actl(1000) + fctl(0, 64, 64)),
        "animated PNG refused (1000 frames)",
    ),
    "apng-made-by-pillow": (
        lambda: encode(photo((64, 64)), "PNG", save_all=True, append_images=[photo((64, 64), 9)]),
        "animated PNG refused (2 frames)",
    ),
    "iccp-zlib-bomb": (
        lambda: zero_png(64, 64, before_idat=iccp_bomb(100_000_000)),
        "corrupt or truncated image",
    ),
    "ztxt-zlib-bombs": (
        lambda: zero_png(64, 64, before_idat=ztxt_bombs(20, 900_000)),
        "Too much memory used in text chunks",
    ),
    "truncated-png": (lambda: zero_png(300, 300, color_type=RGB)[:-40], "truncated"),
    "truncated-header": (lambda: zero_png(300, 300)[:30], "corrupt or truncated image"),
    "bad-crc": (
        lambda: zero_png(64, 64)[:40] + b"\x00\x00\x00\x00" + zero_png(64, 64)[44:],
        "corrupt or truncated image",
    ),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_animated_corrupt_and_bomb_chunk_images_are_refused(
    server: Server, endpoint: str, case: str
) -> None:
    make, message = REFUSED[case]
    response = server.post(endpoint, make())
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert message in detail
    assert "Traceback" not in detail


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("GIF", {}), ("TIFF", {}), ("BMP", {}), ("WEBP", {}), ("ICO", {})],
    ids=["gif", "tiff", "bmp", "webp", "ico"],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_formats_other_than_jpeg_and_png_are_refused_with_415(
    server: Server, endpoint: str, fmt: str, options: dict[str, Any]
) -> None:
    data = encode(photo((64, 64)), fmt, **options)
    response = server.post(endpoint, data, "application/octet-stream")
    assert response.status_code == 415, response.text
    assert "only JPEG and PNG" in response.json()["detail"]


def test_the_decoder_itself_opens_only_jpeg_and_png() -> None:
    # The magic check is the server's first line; Image.open(formats=...) the second.
    with pytest.raises(ValueError, match="JPEG and PNG are accepted"):
        decode_image(encode(photo((64, 64)), "GIF"))


# ---- bounded but harmless: the header's size is what gets allocated -------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_header_smaller_than_its_data_decodes_only_what_it_declares(
    server: Server, endpoint: str
) -> None:
    # IHDR says 64x64, the zlib stream holds 4000x4000 (48 MB inflated): the decoder stops
    # once 64x64 is filled.
    data = lying_png(64, 4000)
    response = server.post(endpoint, data)
    assert response.status_code == 200, response.text
    assert response.json()["features"] == extract_features(Image.new("RGB", (64, 64)))


# ---- ordinary images still predict --------------------------------------------------------

ORDINARY: dict[str, Callable[[], tuple[bytes, str]]] = {
    "jpeg": lambda: (encode(photo(), "JPEG", quality=90), "image/jpeg"),
    "jpeg-12mp": lambda: (encode(photo((4000, 3000)), "JPEG", quality=85), "image/jpeg"),
    "progressive-jpeg": lambda: (encode(photo(), "JPEG", progressive=True), "image/jpeg"),
    "cmyk-jpeg": lambda: (encode(photo().convert("CMYK"), "JPEG"), "image/jpeg"),
    "png-rgb": lambda: (encode(photo(), "PNG"), "image/png"),
    "png-rgba": lambda: (encode(photo().convert("RGBA"), "PNG"), "image/png"),
    "png-palette": lambda: (encode(photo().quantize(64), "PNG"), "image/png"),
    "png-interlaced": lambda: (zero_png(333, 201, color_type=RGBA, interlace=True), "image/png"),
    "png-rgb-12mp": lambda: (zero_png(4000, 3000, color_type=RGB), "image/png"),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", list(ORDINARY), ids=list(ORDINARY))
def test_ordinary_images_still_predict_with_the_features_training_sees(
    server: Server, endpoint: str, case: str
) -> None:
    data, content_type = ORDINARY[case]()
    response = server.post(endpoint, data, content_type)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["features"] == extract_features(decode_image(data))
    assert body["predictions"][0]["label"] in ("dark", "bright")


def test_a_16_bit_greyscale_png_gives_the_features_of_its_8_bit_version() -> None:
    grey8 = np.asarray(photo().convert("L"), dtype=np.uint16)
    as_16_bit = encode(Image.fromarray(grey8 * 257), "PNG")
    assert Image.open(io.BytesIO(as_16_bit)).mode == "I;16"
    expected = extract_features(
        decode_image(encode(Image.fromarray(grey8.astype(np.uint8)), "PNG"))
    )
    got = extract_features(decode_image(as_16_bit))
    for name in FEATURE_NAMES:
        assert got[name] == pytest.approx(expected[name], abs=0.01), name
    assert got["value_mean"] < 0.9  # not clipped to white as Pillow's own conversion does


def test_alpha_is_composited_on_white_after_the_reduction() -> None:
    # Half opaque red, half fully transparent, 1024 wide: reduced before compositing, and
    # the transparent half still counts as white.
    pixels = np.zeros((256, 1024, 4), dtype=np.uint8)
    pixels[:, :512] = (255, 0, 0, 255)
    pixels[:, 512:] = (255, 0, 0, 0)
    image = decode_image(encode(Image.fromarray(pixels, "RGBA"), "PNG"))
    rgb = np.asarray(image)
    assert tuple(rgb[32, 5]) == (255, 0, 0)
    assert tuple(rgb[32, 60]) == (255, 255, 255)


# ---- concurrency: at most IMAGE_DECODE_CONCURRENCY decodes at once -----------------------


def test_concurrent_uploads_decode_at_most_the_configured_number_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    lock = threading.Lock()
    active = 0
    peak = 0
    real_load = ImageFile.ImageFile.load

    def blocking_load(self: ImageFile.ImageFile) -> Any:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            if not release.wait(timeout=60):
                raise AssertionError("the test never released the decodes")
            return real_load(self)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", blocking_load)
    app = create_app(make_settings(image_decode_concurrency=2), loader=StandInLoader())
    data = encode(photo(), "PNG")
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_for(lambda: client.get("/ready").status_code == 200, 60, "the stand-in model")
        served = Server(client)
        decoder = served.state.image_decoder
        endpoints = ENDPOINTS * 3
        with ThreadPoolExecutor(max_workers=len(endpoints)) as pool:
            try:
                futures = [pool.submit(served.post, e, data) for e in endpoints]
                wait_for(
                    lambda: active == 2 and decoder.waiting == len(endpoints) - 2,
                    30,
                    "two decodes running and the other uploads waiting for a slot",
                )
                assert peak == 2
                assert decoder.active == 2
            finally:
                release.set()
            statuses = [f.result(timeout=60).status_code for f in futures]
    assert statuses == [200] * len(endpoints)
    assert peak == 2
    assert decoder.active == 0
    assert decoder.waiting == 0


def test_the_decode_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="image_decode_concurrency"):
        make_settings(image_decode_concurrency=0)
    with pytest.raises(ValueError, match="max_image_decoded_bytes"):
        make_settings(max_image_decoded_bytes=1000)


def test_a_smaller_budget_refuses_what_the_default_accepts() -> None:
    data = zero_png(2000, 2000, color_type=RGB)  # 16 MB decoded
    app = create_app(make_settings(max_image_decoded_bytes=8 * 1024 * 1024), loader=StandInLoader())
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_for(lambda: client.get("/ready").status_code == 200, 60, "the stand-in model")
        response = Server(client).post("/predict-image", data)
    assert response.status_code == 413
    assert f"the budget is {8 * 1024 * 1024:,} bytes" in response.json()["detail"]
    assert decode_image(data).size == (64, 64)  # within the default budget


# ---- the arithmetic, on worked examples ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "decoded", "conversions", "coefficients"),
    [
        (zero_png(6300, 6300, color_type=RGBA), 6300 * 6300 * 4, 6300 * 6300 * 4, 0),
        (zero_png(6000, 6000, depth=1, color_type=GREY), 6000 * 6000, 6000 * 6000, 0),
        (zero_png(5000, 5000, color_type=PALETTE), 5000 * 5000, 5000 * 5000 * 4, 0),
        (zero_png(6000, 6000, depth=16, color_type=GREY), 6000 * 6000 * 2, 6000 * 6000 * 3, 0),
        (zero_png(4000, 4000, color_type=RGB), 4000 * 4000 * 4, 0, 0),
        (jpeg_header(6000, 6000, progressive=True), 750 * 750 * 4, 0, 6000 * 6000 * 6),
        (jpeg_header(6000, 6000, progressive=False), 750 * 750 * 4, 0, 0),
    ],
    ids=["rgba", "1-bit", "palette", "16-bit-grey", "rgb", "progressive-jpeg", "baseline-jpeg"],
)
def test_the_cost_is_read_from_the_header(
    data: bytes, decoded: int, conversions: int, coefficients: int
) -> None:
    image = Image.open(io.BytesIO(data))
    full = image.size
    image.draft("RGB", (64, 64))
    cost = decode_cost(image, (64, 64), full_size=full)
    assert cost.decoded_bytes == decoded
    assert cost.conversion_bytes == conversions
    assert cost.decoder_bytes == coefficients
    assert cost.total_bytes >= decoded + conversions + coefficients


@pytest.mark.parametrize(
    ("mode", "transparent", "steps"),
    [
        ("RGB", False, ()),
        ("L", False, ()),
        ("CMYK", False, ()),
        ("RGBA", False, ("RGBa",)),
        ("LA", False, ("La",)),
        ("PA", False, ("RGBA", "RGBa")),
        ("P", True, ("RGBA", "RGBa")),
        ("P", False, ("RGB",)),
        ("L", True, ("RGBA", "RGBa")),
        ("1", False, ("L",)),
        ("I;16", False, ("I;16", "L")),
    ],
)
def test_full_size_conversions_by_mode(
    mode: str, transparent: bool, steps: tuple[str, ...]
) -> None:
    assert full_size_modes(mode, transparent) == steps


def test_progressive_coefficients_and_reduction_factor_examples() -> None:
    assert progressive_jpeg_coefficient_bytes((8000, 6000), [(2, 2), (1, 1), (1, 1)]) == 144_000_000
    assert reduction_factor((6300, 6300), (64, 64)) == (49, 49)
    assert reduction_factor((100, 40_000), (64, 64)) == (1, 312)
