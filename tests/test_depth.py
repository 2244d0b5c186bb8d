from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sifdata.depth import (
    DepthEncoding,
    DepthEstimator,
    DepthMap,
    decode_depth_image,
    depth_png_bytes,
    load_depth_png,
    save_depth_png,
    spectral_r_palette,
    to_sif_polarity,
)
from sifdata.sources.synthetic import photos_dir


def _ramp(height: int = 40, width: int = 60) -> np.ndarray:
    return np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))


def test_sixteen_bit_png_round_trip_is_lossless_to_quantization(tmp_path: Path) -> None:
    depth = np.random.default_rng(0).random((33, 47)).astype(np.float32)
    path = save_depth_png(depth, tmp_path / "d.png")
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # 16-bit, not 8-bit
    loaded = load_depth_png(path)
    assert loaded.shape == depth.shape
    assert np.abs(loaded - depth).max() <= 0.5 / 65535 + 1e-7
    assert np.array_equal(np.round(loaded * 65535), np.round(depth * 65535))


def test_polarity_lower_is_closer() -> None:
    # Depth Anything predicts inverse depth: larger = closer.
    prediction = np.array([[10.0, 5.0, 0.0]])
    assert to_sif_polarity(prediction).tolist() == [[0.0, 0.5, 1.0]]
    assert to_sif_polarity(np.ones((2, 2))).tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_legacy_grayscale_is_inverted() -> None:
    gray = Image.fromarray(np.array([[255, 0, 51]], dtype=np.uint8))
    values, encoding = decode_depth_image(gray)
    assert encoding is DepthEncoding.GRAY8
    assert values[0].tolist() == pytest.approx([0.0, 1.0, 0.8])  # 255 was the closest


def test_spectral_r_palette_matches_matplotlib() -> None:
    reference = (matplotlib.colormaps["Spectral_r"](np.arange(256))[:, :3] * 255).astype(np.uint8)
    assert np.array_equal(reference, spectral_r_palette())


def test_legacy_spectral_r_png_decodes_to_sif_polarity() -> None:
    # How the legacy maps were written: disparity scaled to 0..255 (larger = closer), coloured.
    disparity = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = (matplotlib.colormaps["Spectral_r"](disparity)[:, :, :3] * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    values, encoding = decode_depth_image(Image.open(io.BytesIO(buffer.getvalue())))
    assert encoding is DepthEncoding.SPECTRAL_R
    assert np.allclose(values, 1 - disparity / 255.0, atol=1.5 / 255)
    # JPEG noise still lands on the nearest palette entry, within a few steps.
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG", quality=95)
    noisy, _ = decode_depth_image(Image.open(io.BytesIO(jpeg.getvalue())), "spectral_r")
    assert np.median(np.abs(noisy - (1 - disparity / 255.0))) < 4 / 255


def test_metric_depth_keeps_far_is_larger() -> None:
    metric = Image.fromarray(np.array([[1000, 3000, 2000]], dtype=np.uint16))
    values, _ = decode_depth_image(metric, "metric16")
    assert values.tolist() == [[0.0, 1.0, 0.5]]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 30),
    st.floats(0, 0.99),
    st.floats(0, 0.99),
    st.floats(0.01, 1),
    st.floats(0.01, 1),
)
def test_box_mean_equals_the_plain_mean(height: int, width: int, x1: float, y1: float, w: float, h: float) -> None:
    values = np.random.default_rng(height * 31 + width).random((height, width)).astype(np.float32)
    box = (x1, y1, min(x1 + w, 1.0), min(y1 + h, 1.0))
    depth = DepthMap(values)
    cols = slice(int(np.floor(box[0] * width)), max(int(np.ceil(box[2] * width)), int(np.floor(box[0] * width)) + 1))
    rows = slice(int(np.floor(box[1] * height)), max(int(np.ceil(box[3] * height)), int(np.floor(box[1] * height)) + 1))
    assert depth.box_mean(box) == pytest.approx(float(values[rows, cols].mean()), abs=1e-5)


def test_box_mean_is_constant_time_after_one_integral() -> None:
    depth = DepthMap(_ramp())
    assert depth.box_mean((0, 0, 1, 1)) == pytest.approx(0.5)
    first = depth.integral
    depth.box_means([(0, 0, 0.5, 1), (0.5, 0, 1, 1)])
    assert depth.integral is first  # built once, reused for every box


def test_estimator_on_tiny_model_gives_sif_maps_at_image_size(tiny_depth_model: Path) -> None:
    estimator = DepthEstimator(str(tiny_depth_model), device="cpu", batch_size=2)
    photo = Image.open(photos_dir() / "animate_glass.jpg").convert("RGB").resize((192, 83))
    images = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), photo.resize((64, 64))]
    maps = estimator.estimate(images)
    assert [m.shape for m in maps] == [(83, 192), (83, 192), (64, 64)]
    for depth in maps:
        assert depth.dtype == np.float32
        assert depth.min() == pytest.approx(0.0, abs=1e-6) and depth.max() == pytest.approx(1.0, abs=1e-6)
    # The same picture gives the same map, whether batched with others or alone.
    assert np.allclose(estimator.estimate_one(photo), maps[0], atol=1e-5)
    # Polarity: SIF depth is 1 - minmax of the model's own prediction.
    raw = estimator.pipeline(photo)["predicted_depth"].float().numpy().squeeze()
    assert np.allclose(maps[0], to_sif_polarity(raw), atol=1e-5)
    by_hand = 1.0 - (raw - raw.min()) / (raw.max() - raw.min())  # the rule itself, not the code under test
    assert raw.shape == maps[0].shape and np.allclose(maps[0], by_hand, atol=1e-5)


def test_depth_png_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        depth_png_bytes(np.full((2, 2), np.nan))


def test_depth_for_models_is_8_bit_and_keeps_polarity() -> None:
    from sifdata.depth import depth_to_image, model_depth_image

    depth = np.array([[0.0, 0.2, 1.0]], dtype=np.float32)
    gray = np.asarray(depth_to_image(depth))
    assert gray.dtype == np.uint8 and gray.shape == (1, 3, 3)
    assert gray[0, :, 0].tolist() == [255, 204, 0]  # closer = brighter
    sixteen = Image.open(io.BytesIO(depth_png_bytes(depth)))
    assert np.array_equal(np.asarray(model_depth_image(sixteen)), gray)
    # What a processor would do to the raw 16-bit PNG: everything saturates.
    assert np.asarray(sixteen.convert("RGB")).max() == 255 and len(np.unique(np.asarray(sixteen.convert("RGB")))) <= 2
    spectral = np.asarray(depth_to_image(depth, "spectral_r"))
    assert np.array_equal(spectral[0, 0], spectral_r_palette()[255])
