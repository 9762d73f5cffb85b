"""The ``masksem`` command. Each sub-command imports its wing (torch or onnxruntime) only when it
runs, so ``masksem serve`` works with the ``serve`` extra alone.

A user error (a bad path, a misspelt ``--set`` key, a checkpoint of the wrong kind, data that
cannot be read) ends the command with one line on stderr and exit status 2; ``--debug`` (anywhere
on the command line, or MASKSEM_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from masksem import cli_export, cli_serve, cli_train
from masksem.cli_data import data_app

app = typer.Typer(
    name="masksem",
    help="MaskSem skeleton action recognition: data, pre-training, evaluation, export, serving.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_app, name="data", help="Prepare and inspect skeleton datasets.")
for command in (cli_train.pretrain, cli_train.linear, cli_train.finetune, cli_train.evaluate):
    app.command()(command)
app.command()(cli_export.export)
app.command()(cli_serve.serve)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an error instead of one line."
    ),
) -> None:
    """MaskSem skeleton action recognition: data, pre-training, evaluation, export, serving."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the input was wrong, not the program: ValueError covers the
    typed errors of recipes, datasets, checkpoints, evaluation and model cards."""
    return (ValueError, OSError, KeyError, RuntimeError)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, KeyError):
        text = f"missing {text}"
    return text


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MASKSEM_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        # standalone_mode=False: errors come here (one line each) instead of typer's panel
        status = app(args=args, prog_name="masksem", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as err:
        show, code = getattr(err, "show", None), getattr(err, "exit_code", None)
        if callable(show) and isinstance(code, int):  # a usage error: typer's own message
            show()
            sys.exit(code)
        if debug or not isinstance(err, user_errors()):
            raise
        command = next((a for a in args if not a.startswith("-")), "masksem")
        print(f"masksem {command}: error: {one_line(err)} (--debug shows where)", file=sys.stderr)
        sys.exit(2)
    # in this mode an Exit(code) inside a command comes back as the return value
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
