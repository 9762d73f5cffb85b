"""``masksem serve``: the recognition service (onnxruntime + FastAPI); never imports torch."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def serve(
    model: Path | None = typer.Option(
        None, "--model", "-m", help="One ONNX model (its card beside it), named by its file stem."
    ),
    models: Path | None = typer.Option(
        None,
        "--models",
        help="A folder: serve every *.onnx in it (each with its card), named by file stem. "
        "Default (no --model either): the checkout's models/.",
    ),
    host: str | None = typer.Option(None, "--host", help="Interface to listen on (127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", "-p", help="TCP port (8000)."),
) -> None:
    """Serve REST, WebSocket streams, OIP v2 and /metrics; SIGHUP reloads every model.

    Every other setting comes from MASKSEM_* environment variables (see service/settings.py).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import uvicorn

    from service.app import create_app, uvicorn_config
    from service.model_registry import ModelFolderError, plan_models
    from service.settings import ServiceSettings

    if model is not None and models is not None:
        typer.echo("pass --model FILE or --models DIR, not both", err=True)
        raise typer.Exit(2)
    overrides: dict[str, object] = {}
    # an option given here wins over both MASKSEM_MODEL and MASKSEM_MODELS
    if model is not None:
        overrides.update(model=model, models=None)
    if models is not None:
        overrides.update(model=None, models=models)
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    try:
        settings = ServiceSettings(**overrides)  # type: ignore[arg-type]
    except ValueError as err:  # pydantic's ValidationError: name the setting, no traceback
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in getattr(err, "errors", lambda: [])()
        )
        typer.echo(f"invalid settings: {problems or err}", err=True)
        raise typer.Exit(2) from err
    try:
        plan_models(settings)  # the checks the service makes, with a one-line message
    except ModelFolderError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    app = create_app(settings, reload_on_sighup=True)
    uvicorn.Server(uvicorn_config(app, settings)).run()


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
