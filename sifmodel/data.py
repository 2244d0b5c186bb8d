"""SIF datasets in the shapes TRL's trainers take, built from ``sifdata.load_dataset``.

SFT rows: ``messages`` (user: RGB, depth, SIF instruction; assistant: the chain) + ``images``.
GRPO rows: ``prompt`` (the user turn) + ``images`` + the columns the rewards read
(``answer``, ``question``, ``gt_boxes``, ``sample_id``, ``depth_map``).
Depth reaches the model as an 8-bit rendering (closer = brighter); the rewards read the
lossless 16-bit map from ``depth_map``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from sifdata.depth import model_depth_image
from sifdata.export import user_content
from sifdata.files import atomic_write, safe_name
from sifdata.images import open_image


def load_sif(name_or_path: str, max_samples: int | None) -> Any:
    """The SIF dataset with image bytes left encoded (decoded only where needed)."""
    import datasets

    import sifdata

    dataset = sifdata.load_dataset(name_or_path)
    if max_samples is not None and len(dataset) > max_samples:
        dataset = dataset.select(range(max_samples))
    return dataset.cast_column("image", datasets.Image(decode=False)).cast_column(
        "depth_image", datasets.Image(decode=False)
    )


def _fit(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """Shrink to at most ``max_pixels`` (aspect kept), as the model's processor would anyway;
    doing it here keeps the training rows small and fast to write."""
    if max_pixels is None or image.width * image.height <= max_pixels:
        return image
    scale = (max_pixels / (image.width * image.height)) ** 0.5
    return image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.Resampling.BICUBIC)


def _model_images(row: dict[str, Any], with_depth: bool, max_pixels: int | None) -> list[Image.Image]:
    images = [_fit(open_image(row["image"]["bytes"]).convert("RGB"), max_pixels)]
    if with_depth:
        if not row.get("depth_image") or not row["depth_image"].get("bytes"):
            raise ValueError(f"record {row['id']} has no depth image (train with with_depth=false)")
        depth = model_depth_image(open_image(row["depth_image"]["bytes"]))
        images.append(_fit(depth, max_pixels))
    return images


def _features(columns: dict[str, Any]) -> Any:
    """The output schema: ``images`` (a list of images) plus ``columns``."""
    from datasets import Features, List
    from datasets import Image as ImageFeature

    return Features({"images": List(ImageFeature()), **columns})


def sft_dataset(
    name_or_path: str, *, with_depth: bool = True, max_samples: int | None = None, max_pixels: int | None = None
) -> Any:
    """Rows with ``messages`` and ``images`` for ``SFTTrainer``."""
    from datasets import List, Value

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "user", "content": user_content(row["question"], with_depth=with_depth)},
                {"role": "assistant", "content": [{"type": "text", "text": row["chain"]}]},
            ],
            "images": _model_images(row, with_depth, max_pixels),
        }

    dataset = load_sif(name_or_path, max_samples)
    message = {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
    features = _features({"messages": List(message)})
    return dataset.map(convert, remove_columns=dataset.column_names, features=features, desc="SFT rows")


def write_depth_maps(dataset: Any, depth_dir: Path) -> None:
    """Write every row's 16-bit depth PNG (the depth reward reads them) before ``datasets.map``:
    a map reused from the cache does not run again, so files written inside it would be missing
    after the output folder was deleted; written here, they exist whenever the rows point at them."""
    for row in dataset.select_columns(["id", "depth_image"]):
        depth_path = depth_dir / f"{safe_name(row['id'])}_d.png"
        if not depth_path.is_file():
            if not row.get("depth_image") or not row["depth_image"].get("bytes"):
                raise ValueError(f"record {row['id']} has no depth map: the depth reward needs one")
            atomic_write(depth_path, row["depth_image"]["bytes"])


def grpo_dataset(
    name_or_path: str,
    depth_dir: str | Path,
    *,
    with_depth: bool = True,
    max_samples: int | None = None,
    max_pixels: int | None = None,
) -> Any:
    """Rows for ``GRPOTrainer`` with the reward columns; 16-bit depth maps are written to ``depth_dir``."""
    from datasets import List, Value

    depth_dir = Path(depth_dir)
    dataset = load_sif(name_or_path, max_samples)
    write_depth_maps(dataset, depth_dir)

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        depth_path = depth_dir / f"{safe_name(row['id'])}_d.png"
        return {
            "prompt": [{"role": "user", "content": user_content(row["question"], with_depth=with_depth)}],
            "images": _model_images(row, with_depth, max_pixels),
            "sample_id": row["id"],
            "question": row["question"],
            "answer": row["answer"],
            "gt_boxes": row["gt_boxes"],
            "depth_map": str(depth_path.resolve()),
        }

    features = _features(
        {
            "prompt": List(
                {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
            ),
            "sample_id": Value("string"),
            "question": Value("string"),
            "answer": Value("string"),
            "gt_boxes": List(List(Value("float64"), length=4)),
            "depth_map": Value("string"),
        }
    )
    return dataset.map(convert, remove_columns=dataset.column_names, features=features, desc="GRPO rows")
