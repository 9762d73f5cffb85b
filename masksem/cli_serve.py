"""``masksem serve``: the recognition service (onnxruntime + FastAPI); never imports torch."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def serve(
    model: Path | None = typer.Option(
        None, "--model", "-m", help="ONNX model (its card beside it). Default: models/default.onnx."
    ),
    host: str | None = typer.Option(None, "--host", help="Interface to listen on (127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", "-p", help="TCP port (8000)."),
) -> None:
    """Serve REST, WebSocket streams, OIP v2 and /metrics; SIGHUP reloads the model.

    Every other setting comes from MASKSEM_* environment variables (see service/settings.py).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import uvicorn

    from service.app import create_app, uvicorn_config
    from service.settings import ServiceSettings
    from skeleton.card import CardError, load_card

    overrides: dict[str, object] = {}
    if model is not None:
        overrides["model"] = model
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
    if not settings.model.is_file():
        typer.echo(
            f"no model at {settings.model}: pass --model (or set MASKSEM_MODEL), or export "
            "one with `masksem export --checkpoint ... --out models/default.onnx`",
            err=True,
        )
        raise typer.Exit(2)
    try:
        load_card(settings.model)  # the same check the service makes, with a clean message
    except CardError as err:
        typer.echo(f"refusing to serve {settings.model}: {err}", err=True)
        raise typer.Exit(2) from err
    app = create_app(settings, reload_on_sighup=True)
    uvicorn.Server(uvicorn_config(app, settings)).run()


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
