"""How the command-line tools end: one clear line for an expected failure, never a traceback
(``--debug`` anywhere on the command line shows it), an exit code that tells the truth, and a
line saying what to do after Ctrl-C."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from sifdata.progress import labelled, plain_console
from sifdata.secrets import redact

#: What a user's input or environment can cause (a wrong path, a bad value, a model or extra that
#: is missing, a refused or unreachable server, a folder in use); anything else is a bug and keeps
#: its traceback.
EXPECTED: tuple[type[BaseException], ...] = (OSError, ValueError, ImportError, RuntimeError)

DEBUG_FLAG = "--debug"
_debugging = False


class CommandFailed(RuntimeError):
    """A command's failure reported in one line (under ``--debug``, raised for its traceback)."""


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``error: message`` (secrets redacted) and exit ``code``; under
    ``--debug``, raise :class:`CommandFailed` instead so the traceback (and what caused it) shows."""
    import typer

    if _debugging:
        raise CommandFailed(redact(message)) from sys.exc_info()[1]
    plain_console(stderr=True, soft_wrap=True).print(labelled("error:", "bold red", redact(message)))
    raise typer.Exit(code)


def run_cli(app: Any, *, interrupted: str) -> NoReturn:
    """Run a Typer ``app`` on ``sys.argv`` and exit: Click's usage errors as Click shows them,
    Ctrl-C with ``interrupted`` (exit 130), an expected failure as ``error: ...`` (exit 1, the
    message with any secret redacted), ``--debug`` letting the traceback through."""
    import click

    global _debugging
    arguments = sys.argv[1:]
    debug = _debugging = DEBUG_FLAG in arguments
    arguments = [argument for argument in arguments if argument != DEBUG_FLAG]
    errors = plain_console(stderr=True, soft_wrap=True)  # a message is one line, however long
    code: Any
    try:
        code = app(args=arguments, standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = 130
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    except EXPECTED as error:
        if debug:
            raise
        errors.print(labelled("error:", "bold red", redact(str(error) or type(error).__name__)))
        errors.print(f"({DEBUG_FLAG} shows where it happened)", style="dim")
        code = 1
    if code == 130 and not isinstance(code, bool):  # Typer turns Ctrl-C into exit code 130, silently
        errors.print(interrupted)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code if isinstance(code, int) else 0)
