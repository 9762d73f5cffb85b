"""The ``masksem`` command. Each sub-command imports its wing (torch or onnxruntime) only when it
runs, so ``masksem serve`` works with the ``serve`` extra alone."""

from __future__ import annotations

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
