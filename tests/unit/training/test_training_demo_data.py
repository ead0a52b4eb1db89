"""The synthetic art-style set: deterministic, and the styles really differ."""

from __future__ import annotations

import numpy as np
from artpulse_inference.core.features import FEATURE_NAMES, decode_image, extract_features_batch
from artpulse_inference.training.demo_data import STYLES, render_image


def test_the_same_image_is_rendered_byte_for_byte() -> None:
    assert render_image("cubism", 3) == render_image("cubism", 3)
    assert render_image("cubism", 3) != render_image("cubism", 4)
    assert render_image("cubism", 3, seed=8) != render_image("cubism", 3)


def test_styles_differ_in_brightness_and_texture() -> None:
    def mean_features(style: str) -> dict[str, float]:
        X = extract_features_batch([decode_image(render_image(style, i)) for i in range(8)])
        return dict(zip(FEATURE_NAMES, X.mean(axis=0), strict=True))

    means = {style: mean_features(style) for style in STYLES}
    # Chiaroscuro is dark; minimalism is flat; expressionism is busy and saturated.
    assert means["baroque"]["value_mean"] < min(
        means[s]["value_mean"] for s in STYLES if s != "baroque"
    )
    assert means["minimalism"]["edge_density"] < means["expressionism"]["edge_density"]
    assert means["expressionism"]["saturation_mean"] > means["minimalism"]["saturation_mean"]


def test_exposure_changes_brightness_only() -> None:
    normal = extract_features_batch([decode_image(render_image("impressionism", 0))])
    dark = extract_features_batch([decode_image(render_image("impressionism", 0, exposure=0.6))])
    value = FEATURE_NAMES.index("value_mean")
    assert dark[0, value] < normal[0, value] * 0.75
    assert np.isfinite(dark).all()
