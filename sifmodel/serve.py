"""``sifmodel serve``: an OpenAI-compatible server for a (merged) model: vLLM where installed,
``transformers serve`` otherwise."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Literal

Engine = Literal["auto", "vllm", "transformers"]


def serve_command(
    model: str, *, host: str = "127.0.0.1", port: int = 8000, engine: Engine = "auto", device: str | None = None
) -> list[str]:
    """The command line that serves ``model``; ``auto`` picks vLLM when it is importable."""
    if engine == "auto":
        engine = "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"
    if engine == "vllm":
        executable = shutil.which("vllm") or "vllm"
        return [
            executable,
            "serve",
            model,
            "--host",
            host,
            "--port",
            str(port),
            "--limit-mm-per-prompt",
            '{"image": 4}',
        ]
    executable = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    command = [executable, "serve", model, "--host", host, "--port", str(port)]
    return command + (["--device", device] if device else [])
