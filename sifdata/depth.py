"""Depth maps in the SIF convention: values in [0, 1], lower = closer to the camera.

- :class:`DepthEstimator` runs Depth Anything (or any ``depth-estimation`` model) through
  transformers' pipeline, batched and on the best device, and converts its relative inverse
  depth (larger = closer) to SIF polarity: ``depth = 1 - minmax(prediction)``.
- 16-bit PNGs store ``round(depth * 65535)`` losslessly.
- Legacy PNGs come in two encodings of opposite polarity; :func:`decode_depth_image` says
  which it read and always returns SIF polarity.
- :class:`DepthMap` answers "mean depth inside this box" in O(1) with a summed-area table.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sifdata.images import open_image

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
_UINT16_MAX = 65535


class DepthEncoding(StrEnum):
    """How a depth PNG encodes depth, and so which way its polarity runs."""

    SIF16 = "sif16"  # 16-bit, round(depth * 65535), lower = closer (this project's own)
    GRAY8 = "gray8"  # legacy 8-bit grayscale, value / 255, larger = closer
    SPECTRAL_R = "spectral_r"  # legacy matplotlib Spectral_r colour map, index i: larger = closer
    METRIC16 = "metric16"  # raw 16-bit metric depth (e.g. millimetres), larger = farther
    AUTO = "auto"


class DepthMap:
    """A depth map in SIF polarity with O(1) box means through a summed-area table."""

    def __init__(self, values: np.ndarray) -> None:
        if values.ndim != 2 or values.size == 0:
            raise ValueError(f"a depth map must be a non-empty 2-D array, got shape {values.shape}")
        self.values = values.astype(np.float32, copy=False)
        self._integral: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.values.shape[0])

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    @property
    def integral(self) -> np.ndarray:
        if self._integral is None:
            table = np.zeros((self.height + 1, self.width + 1), dtype=np.float64)
            np.cumsum(self.values, axis=0, dtype=np.float64, out=table[1:, 1:])
            np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
            self._integral = table
        return self._integral

    def _pixel_span(self, low: float, high: float, size: int) -> tuple[int, int]:
        start = min(max(math.floor(low * size), 0), size - 1)
        stop = min(max(math.ceil(high * size), start + 1), size)
        return start, stop

    def box_mean(self, box: Sequence[float]) -> float:
        """Mean depth inside a per-axis normalized box (at least one pixel is always covered)."""
        col_start, col_stop = self._pixel_span(box[0], box[2], self.width)
        row_start, row_stop = self._pixel_span(box[1], box[3], self.height)
        table = self.integral
        total = (
            table[row_stop, col_stop]
            - table[row_start, col_stop]
            - table[row_stop, col_start]
            + table[row_start, col_start]
        )
        return float(total / ((row_stop - row_start) * (col_stop - col_start)))

    def box_means(self, boxes: Sequence[Sequence[float]]) -> list[float]:
        return [self.box_mean(box) for box in boxes]


def to_sif_polarity(prediction: np.ndarray) -> np.ndarray:
    """Relative inverse depth (larger = closer) to SIF depth: ``1 - minmax(prediction)``.

    A constant prediction carries no depth information and maps to 0.5 everywhere.
    """
    prediction = prediction.astype(np.float32, copy=False)
    low, high = float(prediction.min()), float(prediction.max())
    if not math.isfinite(low) or not math.isfinite(high):
        raise ValueError("depth prediction contains NaN or infinity")
    if high - low <= 1e-12:
        return np.full(prediction.shape, 0.5, dtype=np.float32)
    return (1.0 - (prediction - low) / (high - low)).astype(np.float32)


def quantize_depth(depth: np.ndarray) -> np.ndarray:
    """The uint16 values a 16-bit depth PNG stores: ``round(depth * 65535)``."""
    if np.isnan(depth).any():
        raise ValueError("depth map contains NaN")
    return np.round(np.clip(depth, 0.0, 1.0) * _UINT16_MAX).astype(np.uint16)


def dequantize_depth(quantized: np.ndarray) -> np.ndarray:
    """The float32 SIF depth a 16-bit PNG's values stand for."""
    return quantized.astype(np.float32) / np.float32(_UINT16_MAX)


def depth_png_bytes(depth: np.ndarray, compress_level: int = 3) -> bytes:
    """Encode a SIF depth map (float, or already quantized uint16) as a lossless 16-bit PNG.

    zlib level 3 costs a fraction of the default level's time on large maps for files a few
    percent larger; the pixels are the same either way.
    """
    buffer = io.BytesIO()
    quantized = depth if depth.dtype == np.uint16 else quantize_depth(depth)
    Image.fromarray(quantized).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def save_depth_png(depth: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(depth_png_bytes(depth))
    return path


# ColorBrewer "Spectral" (the 11 anchors of matplotlib's Spectral, as 0-255 integers);
# matplotlib interpolates them linearly into 256 entries, Spectral_r reverses them.
_SPECTRAL_ANCHORS = (
    np.array(
        [
            [158, 1, 66],
            [213, 62, 79],
            [244, 109, 67],
            [253, 174, 97],
            [254, 224, 139],
            [255, 255, 191],
            [230, 245, 152],
            [171, 221, 164],
            [102, 194, 165],
            [50, 136, 189],
            [94, 79, 162],
        ],
        dtype=np.float64,
    )
    / 255.0
)


def spectral_r_palette() -> np.ndarray:
    """The 256 RGB colours (uint8) that matplotlib's ``Spectral_r`` gives indices 0..255."""
    # The same arithmetic as matplotlib's LinearSegmentedColormap lookup table, so that the
    # truncation to bytes lands on the same integers.
    # Spectral_r's anchors sit at 1 - x of Spectral's, in reverse order.
    anchors = (1.0 - np.linspace(0.0, 1.0, len(_SPECTRAL_ANCHORS))[::-1]) * 255
    samples = 255 * np.linspace(0.0, 1.0, 256)
    index = np.searchsorted(anchors, samples)[1:-1]
    distance = (samples[1:-1] - anchors[index - 1]) / (anchors[index] - anchors[index - 1])
    lut = np.empty((256, 3))
    for channel in range(3):
        values = _SPECTRAL_ANCHORS[::-1, channel]  # Spectral_r reverses the anchors
        lut[0, channel], lut[-1, channel] = values[0], values[-1]
        lut[1:-1, channel] = distance * (values[index] - values[index - 1]) + values[index - 1]
    lut = np.clip(lut, 0.0, 1.0)
    # matplotlib turns floats into bytes by truncation, as did the scripts that wrote these PNGs.
    return (lut * 255).astype(np.uint8)


def _decode_spectral_r(rgb: np.ndarray) -> np.ndarray:
    palette = spectral_r_palette().astype(np.int32)
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    unpacked = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    nearest = np.empty(len(colours), dtype=np.int32)
    for start in range(0, len(colours), 4096):  # bounded memory for noisy (JPEG'd) maps
        chunk = unpacked[start : start + 4096]
        distances = ((chunk[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)
        nearest[start : start + 4096] = distances.argmin(axis=1)
    index = nearest[inverse].reshape(packed.shape)
    return (1.0 - index / 255.0).astype(np.float32)


def detect_encoding(image: Image.Image) -> DepthEncoding:
    """Guess a PNG's depth encoding from its mode and colours (16-bit means this project's)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return DepthEncoding.SIF16
    if image.mode in ("L", "LA"):
        return DepthEncoding.GRAY8
    rgb = np.asarray(image.convert("RGB"))
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return DepthEncoding.GRAY8
    return DepthEncoding.SPECTRAL_R


def decode_depth_image(
    image: Image.Image, encoding: DepthEncoding | str = DepthEncoding.AUTO
) -> tuple[np.ndarray, DepthEncoding]:
    """Decode a depth image into SIF polarity (lower = closer); returns the encoding used."""
    encoding = DepthEncoding(encoding)
    if encoding is DepthEncoding.AUTO:
        encoding = detect_encoding(image)
    if encoding is DepthEncoding.SIF16:
        return dequantize_depth(np.clip(np.asarray(image), 0, _UINT16_MAX)), encoding
    if encoding is DepthEncoding.METRIC16:
        metric = np.asarray(image, dtype=np.float32)
        low, high = float(metric.min()), float(metric.max())
        if high - low <= 0:
            return np.full(metric.shape, 0.5, dtype=np.float32), encoding
        return ((metric - low) / (high - low)).astype(np.float32), encoding
    if encoding is DepthEncoding.GRAY8:
        gray = np.asarray(image.convert("L"), dtype=np.float32)
        return (1.0 - gray / 255.0).astype(np.float32), encoding
    return _decode_spectral_r(np.asarray(image.convert("RGB"))), encoding


def load_depth_png(source: str | Path | bytes, encoding: DepthEncoding | str = DepthEncoding.AUTO) -> np.ndarray:
    """Load a depth PNG (path or bytes) into a float32 SIF depth map."""
    with open_image(source, decode=False) as image:
        values, _ = decode_depth_image(image, encoding)
    return values


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class DepthModelUnavailable(RuntimeError):
    """The depth model cannot be loaded (not downloaded and offline, a wrong id or folder)."""

    def __init__(self, model: str, error: Exception) -> None:
        self.model = model
        local = Path(model).exists()
        where = (
            "the folder has no loadable model"
            if local
            else "it is not in the Hugging Face cache and the Hub is not reachable (or the id is wrong)"
        )
        super().__init__(
            f"depth model {model!r} cannot be loaded: {where} ({type(error).__name__}). Pass --depth-model with a "
            "local folder or a cached Hub id (e.g. after `hf download depth-anything/Depth-Anything-V2-Small-hf`)."
        )


class DepthEstimator:
    """Monocular depth in SIF polarity from a transformers ``depth-estimation`` model.

    The model loads on first use through ``pipeline("depth-estimation")``, so a Hub id, a
    local folder or a cached snapshot all work the standard way. Images of any size are batched:
    each goes through the model's own image processor (Depth Anything keeps the aspect ratio,
    shorter side 518, multiples of 14), images whose processed tensors have one shape share a
    forward pass, and each prediction is resized back to its own image's size, exactly as the
    pipeline does one image at a time. ``uniform_size`` (e.g. 518) resizes every image to that
    square instead, so that all of them batch together: faster on mixed sizes, at the cost of
    the aspect ratio the model was trained on.
    """

    def __init__(
        self,
        model: str = DEFAULT_DEPTH_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 8,
        revision: str | None = None,
        uniform_size: int | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.revision = revision
        self.uniform_size = uniform_size
        self._pipeline: Any = None
        self.forward_passes = 0

    @property
    def pipeline(self) -> Any:
        """The loaded ``depth-estimation`` pipeline; :class:`DepthModelUnavailable` says which
        model could not be loaded and what to pass instead."""
        if self._pipeline is None:
            from transformers import pipeline

            try:
                self._pipeline = pipeline(
                    "depth-estimation",
                    model=self.model,
                    revision=self.revision,
                    device=self.device or default_device(),
                )
            except (OSError, ValueError) as error:
                raise DepthModelUnavailable(self.model, error) from None
        return self._pipeline

    def _pixels(self, image: Image.Image) -> Any:
        processor = self.pipeline.image_processor
        if self.uniform_size is None:
            return processor(images=image, return_tensors="pt")["pixel_values"]
        size = {"height": self.uniform_size, "width": self.uniform_size}
        return processor(images=image, size=size, keep_aspect_ratio=False, return_tensors="pt")["pixel_values"]

    def estimate(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """SIF depth maps (float32, H x W of each image, lower = closer)."""
        import torch

        pipe = self.pipeline
        rgb = [image.convert("RGB") for image in images]
        pixels = [self._pixels(image) for image in rgb]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, tensor in enumerate(pixels):
            by_shape.setdefault(tuple(tensor.shape[-2:]), []).append(index)
        results: list[np.ndarray | None] = [None] * len(images)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = torch.cat([pixels[i] for i in chunk]).to(pipe.device, pipe.dtype)
                with torch.inference_mode():
                    outputs = pipe.model(pixel_values=batch)
                self.forward_passes += 1
                sizes = [rgb[i].size[::-1] for i in chunk]
                for index, output in zip(
                    chunk, pipe.image_processor.post_process_depth_estimation(outputs, sizes), strict=True
                ):
                    prediction = output["predicted_depth"].float().cpu().numpy()
                    results[index] = to_sif_polarity(np.squeeze(prediction))
        return [r for r in results if r is not None]

    def estimate_one(self, image: Image.Image) -> np.ndarray:
        return self.estimate([image])[0]


def depth_to_image(depth: np.ndarray, style: str = "gray") -> Image.Image:
    """An 8-bit RGB picture of a SIF depth map, the form a vision-language model sees.

    Processors convert every image to 8-bit RGB; a 16-bit PNG converted that way saturates to
    white, so depth goes to models through this function. ``gray``: closer = brighter (the
    Depth Anything convention, ``255 * (1 - depth)``); ``spectral_r``: the legacy colour map.
    """
    nearness = np.round(255 * (1.0 - np.clip(depth, 0.0, 1.0))).astype(np.uint8)
    if style == "gray":
        return Image.fromarray(np.repeat(nearness[:, :, None], 3, axis=2))
    if style == "spectral_r":
        return Image.fromarray(spectral_r_palette()[nearness])
    raise ValueError(f"unknown depth image style {style!r} (gray or spectral_r)")


def model_depth_image(image: Image.Image, style: str = "gray") -> Image.Image:
    """A depth image ready for a model: 16-bit depth PNGs are rendered with
    :func:`depth_to_image`; 8-bit images are taken as already rendered."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values, _ = decode_depth_image(image, DepthEncoding.SIF16)
        return depth_to_image(values, style)
    return image.convert("RGB")
