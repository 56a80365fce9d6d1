"""``mmsearch serve``: run the REST API with uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from core.errors import MMSearchError
from core.settings import Settings

logger = logging.getLogger(__name__)
err_console = Console(stderr=True)

EXIT_ERROR = 2


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # a listening address is not one to browse to
    if ":" in shown:  # IPv6
        shown = f"[{shown}]" if shown != "::" else "[::1]"
    return f"http://{shown}:{port}"


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (env MMSEARCH_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port to listen on (env MMSEARCH_PORT).")
    ] = None,
    reload: Annotated[
        bool, typer.Option(help="Restart when the code changes (development; models load on each restart).")
    ] = False,
) -> None:
    """Run the REST API (docs at /docs). Exit code 2 when the store is in use or the models cannot load.

    Models and the store are loaded before the port opens, so a server that answers is ready to serve.
    """
    import uvicorn

    from app.main import create_app

    overrides = {"host": host, "port": port}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    url = _url(settings.host, settings.port)

    if reload:
        # uvicorn's reloader imports the app in a child process: the factory loads everything there,
        # in the lifespan. Check the store here first, so a locked store is a clear error, not a traceback.
        _check_store(settings)
        err_console.print(f"mmsearch API at {url} (docs: {url}/docs), reloading on code changes")
        uvicorn.run("app.main:create_app", factory=True, host=settings.host, port=settings.port, reload=True)
        return

    from app.services import Services

    try:
        with err_console.status("opening the store and loading the models…"):
            services = Services.load(settings)
    except MMSearchError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
    try:
        err_console.print(f"mmsearch API at {url} (docs: {url}/docs)")
        # The app gets the loaded services, so a failure to load is reported above with a clear message
        # rather than as a traceback from the lifespan; the app does not own them, so they are closed here.
        uvicorn.run(create_app(settings, services=services), host=settings.host, port=settings.port)
    finally:
        services.close()


def _check_store(settings: Settings) -> None:
    from indexer.setup import open_store

    try:
        open_store(settings).close()
    except MMSearchError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
