"""Tiny random-weight models built from configs, for offline demos and tests.

They exercise the real loading paths (``from_pretrained``, ``pipeline``) with a few hundred
thousand parameters; their outputs are meaningless, and everything that uses them says so.
"""

from __future__ import annotations

from pathlib import Path

TINY_DEPTH_NAME = "tiny-random-depth-anything"


def build_tiny_depth_anything(path: str | Path, seed: int = 0) -> Path:
    """Save a ~130K-parameter Depth Anything (tiny DINOv2 backbone) with its image processor.

    Loadable with ``pipeline("depth-estimation", model=path)`` and so by
    :class:`sifdata.depth.DepthEstimator`. Reuses an existing folder.
    """
    path = Path(path)
    if (path / "config.json").is_file() and (path / "preprocessor_config.json").is_file():
        return path
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = Dinov2Config(  # type: ignore[call-arg]  # config kwargs are dynamic
        image_size=56,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[16, 16, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=16,
        patch_size=14,
    )
    model = DepthAnythingForDepthEstimation(config).eval()
    processor = DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
