"""``sifmodel``: train (SFT, GRPO), merge, infer, serve, and export configs for LLaMA-Factory."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from sifdata.progress import plain_console
from sifdata.terminal import fail
from sifmodel.backends import model_spec_help
from sifmodel.prompts import prompt_mode

app = typer.Typer(
    help="SIF models: SFT and GRPO recipes, merge, inference, serving. "
    "Errors print one line; --debug shows the traceback.",
    no_args_is_help=True,
)
console = plain_console()
errors = plain_console(stderr=True, soft_wrap=True)  # a message is one line, however long

Overrides = Annotated[
    list[str] | None, typer.Argument(help="field overrides, e.g. learning_rate=1e-5 lora.r=16 max_steps=10")
]


def _fail(message: str) -> NoReturn:
    fail(message)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def sft(
    overrides: Overrides = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (defaults: the paper's SFT settings)")] = None,
) -> None:
    """Stage 1: supervised fine-tuning on SIF chains (TRL SFTTrainer, LoRA by default)."""
    from sifmodel.config import SFTSettings, load_settings
    from sifmodel.sft import train_sft

    try:
        settings = load_settings(SFTSettings, config, overrides)
    except ValueError as error:
        _fail(str(error))
    console.print(f"adapter and processor in {train_sft(settings)}")


@app.command()
def grpo(
    overrides: Overrides = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (defaults: the paper's GRPO settings)")] = None,
) -> None:
    """Stage 2: GRPO-SIF with the four rewards (TRL GRPOTrainer)."""
    from sifmodel.config import GRPOSettings, load_settings
    from sifmodel.grpo import train_grpo

    try:
        settings = load_settings(GRPOSettings, config, overrides)
    except ValueError as error:
        _fail(str(error))
    console.print(f"adapter, processor and progress state in {train_grpo(settings)}")


@app.command()
def merge(
    adapter: Path,
    out: Annotated[Path, typer.Option(help="folder for the merged model")],
    base: Annotated[str | None, typer.Option(help="base model (default: the one the adapter records)")] = None,
    name: Annotated[str | None, typer.Option(help="model name for the card (e.g. ORG/SIFThinker-7B)")] = None,
    results: Annotated[list[Path] | None, typer.Option(help="sifeval results.json files for the card")] = None,
) -> None:
    """Merge a LoRA adapter into full weights, with the processor and a model card."""
    from sifmodel.merge import merge_adapter

    console.print(f"merged model in {merge_adapter(adapter, out, base=base, name=name, results=results)}")


@app.command()
def infer(
    model: Annotated[str, typer.Option(help=model_spec_help())],
    image: Annotated[Path, typer.Option(help="the RGB image")],
    question: Annotated[str, typer.Option(help="the question")],
    depth: Annotated[Path | None, typer.Option(help="a 16-bit SIF depth PNG (else estimated)")] = None,
    depth_model: Annotated[str, typer.Option(help="depth model used when --depth is not given")] = (
        "depth-anything/Depth-Anything-V2-Small-hf"
    ),
    mode: Annotated[str, typer.Option(help="sif, sif-rgb or plain")] = "sif",
    max_new_tokens: int = 2048,
    out: Annotated[Path | None, typer.Option(help="folder for step PNGs and the raw output")] = None,
) -> None:
    """Image + question -> the chain, the answer, and (with --out) a PNG per focus step."""
    from sifdata.images import open_image
    from sifmodel.backends import GenerationSettings, load
    from sifmodel.infer import infer as run

    picture = open_image(image).convert("RGB")  # before the model is loaded: a wrong path costs nothing
    depth_picture = open_image(depth) if depth else None
    backend = load(model, depth_model=None if depth else depth_model)
    result = run(
        backend,
        picture,
        question,
        depth_image=depth_picture,
        mode=prompt_mode(mode),
        settings=GenerationSettings(max_new_tokens=max_new_tokens),
        out=out,
    )
    console.print(shown_reply(result.text), markup=False, soft_wrap=True)
    console.rule()
    for number, step in enumerate(result.chain.focus_steps, 1):
        console.print(f"step {number}: boxes {list(step.boxes)} depths {list(step.depths)}", markup=False)
    console.print(f"answer: {result.chain.answer if result.chain.answer is not None else '(none)'}", markup=False)
    if result.chain.issues:
        console.print(f"parse issues: {'; '.join(result.chain.issues)}", markup=False)
    if out:
        console.print(f"{len(result.step_images)} step images in {out}")


@app.command()
def serve(
    model: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    engine: Annotated[str, typer.Option(help="auto (vLLM if installed), vllm or transformers")] = "auto",
    device: Annotated[str | None, typer.Option(help="transformers serve's device (cpu, cuda:0, auto)")] = None,
    print_command: Annotated[bool, typer.Option(help="print the command instead of running it")] = False,
) -> None:
    """Serve a model behind an OpenAI-compatible API (vLLM, else transformers serve)."""
    from sifmodel.serve import serve_command

    command = serve_command(model, host=host, port=port, engine=engine, device=device)  # type: ignore[arg-type]
    if print_command:
        print(" ".join(command))
        return
    os.execvp(command[0], command)


@app.command(name="llamafactory-yaml")
def llamafactory_yaml(
    out: Annotated[Path, typer.Option(help="YAML file to write")],
    dataset_dir: Annotated[str, typer.Option(help="folder of `sifdata export --format llamafactory`")],
    config: Annotated[Path | None, typer.Option(help="a sifmodel SFT config")] = None,
    dataset: Annotated[str, typer.Option(help="dataset name in dataset_info.json")] = "sif",
    overrides: Overrides = None,
) -> None:
    """Write the LLaMA-Factory SFT YAML equivalent to a sifmodel SFT config."""
    from sifmodel.config import SFTSettings, load_settings
    from sifmodel.llamafactory import write_llamafactory_yaml

    settings = load_settings(SFTSettings, config, overrides)
    console.print(f"wrote {write_llamafactory_yaml(settings, dataset_dir, out, dataset)}")


@app.command(name="tiny-model")
def tiny_model(out: Path) -> None:
    """Build the tiny random-weight Qwen2.5-VL used by the offline demo and tests."""
    from sifmodel.tiny_models import build_tiny_qwen2_5_vl

    console.print(f"tiny model in {build_tiny_qwen2_5_vl(out)}")


def shown_reply(text: str, max_blank_lines: int = 2) -> str:
    """A reply as printed: runs of blank lines cut to ``max_blank_lines`` (a random-weight model's
    2048 newlines are not 2048 lines of output), and a reply of only whitespace said as such."""
    import re

    if not text.strip():
        return f"(the reply is {len(text)} whitespace characters and nothing else)"
    return re.sub(r"\n(?:[ \t]*\n){" + str(max_blank_lines + 1) + r",}", "\n" * (max_blank_lines + 1), text.strip())


def main() -> None:
    from sifdata.terminal import run_cli

    run_cli(app, interrupted="interrupted: checkpoints in output_dir are kept; resume with resume_from_checkpoint=true")


if __name__ == "__main__":
    main()
