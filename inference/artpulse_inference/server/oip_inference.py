"""One decoded Open Inference Protocol request through the model, for both transports.

``routers/oip.py`` (REST) and ``oip_grpc.py`` (gRPC) call :func:`run_inference` with the
served model and an ``oip_codec.InferRequest``. Feature rows pass the feature bounds
(``FEATURE_BOUNDS``) as on ``/predict``; an image goes through the image extractor as on
``/predict-image`` (``MAX_IMAGE_BYTES``, the decode budget, ``IMAGE_DECODE_CONCURRENCY``).
Then the injected faults, the prediction as production traffic (drift and shadow, like
``/predict``) and the outputs asked for. Problems are ``OipError`` (400) or, for the
limits, ``HTTPException`` (413), which the transports render in the protocol's shape.
"""

from __future__ import annotations

from fastapi import HTTPException

from artpulse_inference.core.features import ImageDecodeError, ImageTooLarge

from .inputs import JPEG_MAGIC, PNG_MAGIC
from .model_store import LoadedModel, Matrix
from .oip_codec import InferRequest, OutputTensor, check_finite_output, output_tensors
from .oip_tensors import OipError
from .routers.predict import IMAGE_LIMIT_SETTINGS, apply_faults
from .state import ServerState
from .validation import RequestValidationFailure


async def run_inference(
    state: ServerState, model: LoadedModel, request: InferRequest
) -> list[OutputTensor]:
    if request.image is not None:
        X = await image_matrix(state, model, request.image)
    else:
        assert request.matrix is not None  # decode_inputs gives one or the other
        try:
            X = state.feature_bounds.apply(model, request.matrix)
        except RequestValidationFailure as exc:
            raise OipError(exc.message) from None
    await apply_faults(model)
    result = await state.predict(model, X, production=True)
    check_finite_output(result)
    return output_tensors(model, result, request.outputs)


async def image_matrix(state: ServerState, model: LoadedModel, data: bytes) -> Matrix:
    """The one-row feature matrix of a JPEG or PNG image, as ``/predict-image`` makes it."""
    if not model.image_features_supported:
        raise OipError(
            f"model {model.name!r} expects features the image extractor does not produce: "
            "send them as numbers"
        )
    limit = state.settings.max_image_bytes
    if len(data) > limit:
        raise HTTPException(
            413,
            detail=f"image of {len(data)} bytes exceeds the limit of {limit} bytes "
            "(MAX_IMAGE_BYTES)",
        )
    if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
        raise OipError("only JPEG and PNG images are accepted (the bytes are neither)")
    try:
        # Off the event loop, at most IMAGE_DECODE_CONCURRENCY at a time.
        features = await state.image_decoder.features(data)
    except ImageTooLarge as exc:
        setting = IMAGE_LIMIT_SETTINGS.get(exc.limit, exc.limit)
        raise HTTPException(413, detail=f"image refused: {exc} ({setting})") from None
    except ImageDecodeError as exc:
        raise OipError(f"image refused: {exc}") from None
    return model.image_row(features)
