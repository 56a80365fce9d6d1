"""``mmsearch serve``: run the REST API with uvicorn."""

from __future__ import annotations

import errno
import logging
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.console import err_console, plural, print_error, print_model_error
from core.errors import MMSearchError, ModelLoadError
from core.settings import Settings

if TYPE_CHECKING:
    from app.api.services import Services

logger = logging.getLogger(__name__)

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
        bool,
        typer.Option(
            "--reload", help="Restart when the code changes (development; models load on each restart)."
        ),
    ] = False,
    ingest: Annotated[
        list[Path] | None,
        typer.Option(help="Index these files or folders (recursively) before serving; repeatable."),
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(help="Embedding model (env MMSEARCH_EMBEDDER_MODEL).")
    ] = None,
    reranker: Annotated[
        str | None, typer.Option(help="Reranker model (env MMSEARCH_RERANKER_MODEL).")
    ] = None,
    add_reranker: Annotated[
        list[str] | None,
        typer.Option(
            help="Load another reranker beside the default, [NAME=]MODEL[;backend=B][;profile=P]; "
            "repeatable (env MMSEARCH_RERANKERS). Requests pick one by name."
        ),
    ] = None,
    ui: Annotated[
        bool,
        typer.Option(
            show_default=False,
            help="Also run the search UI (env MMSEARCH_UI_PORT, default 8501) when Streamlit is "
            "installed (default: --ui).",
        ),
    ] = True,
) -> None:
    """Run the REST API (docs at /docs), with the search UI beside it.

    Exit code 2 when the port is in use, the store is in use or a model cannot load. Models and the
    store are loaded before the port opens, so a server that answers is ready to serve.
    With --ingest, the given paths are indexed first (unchanged files are skipped), in this process:
    the embedded store can be opened by one process at a time. The search UI runs beside the API as a
    second process (see `mmsearch ui`), stopped with the server.
    """
    import uvicorn

    from app.api.main import create_app

    settings = Settings.with_options(
        host=host, port=port, embedder_model=embedder, reranker_model=reranker, rerankers=add_reranker or None
    )
    url = _url(settings.host, settings.port)

    if reload and ingest:
        print_error("--ingest cannot be combined with --reload; ingest first")
        raise typer.Exit(code=EXIT_ERROR)
    # Checked before anything loads: a busy port is said plainly, not minutes later by uvicorn.
    busy = port_problem(settings.host, settings.port, "--port or MMSEARCH_PORT")
    if busy is not None:
        print_error(busy)
        raise typer.Exit(code=EXIT_ERROR)
    if reload:
        # uvicorn's reloader imports the app in a child process: the factory loads everything there,
        # in the lifespan. Check the store here first, so a locked store is a clear error, not a traceback.
        _check_store(settings)
        err_console.print(f"mmsearch API at {url} (docs: {url}/docs), reloading on code changes")
        uvicorn.run(
            "app.api.main:create_app", factory=True, host=settings.host, port=settings.port, reload=True
        )
        return

    from app.api.services import Services

    try:
        with err_console.status("opening the store and loading the models…"):
            services = Services.load(settings)
    except ModelLoadError as exc:
        names = {
            "embedder": settings.embedder_model,
            "text embedder": settings.text_embedder_model,
            "reranker": settings.reranker_model,
            "added reranker": [spec.split(";")[0].split("=")[-1] for spec in settings.rerankers],
        }
        print_model_error("serve", exc, names)
        raise typer.Exit(code=EXIT_ERROR) from exc
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc
    try:
        if ingest:
            _ingest(services, ingest)
        err_console.print(f"mmsearch API at {url} (docs: {url}/docs)")
        err_console.print(
            f"search: curl -s {url}/v1/search -H 'content-type: application/json' "
            """-d '{"query": "How much did revenue grow?", "top_n": 3}'""",
            soft_wrap=True,  # one line, so it can be copied
        )
        ui_process = _start_ui(settings, url) if ui else None
        try:
            # The app gets the loaded services, so a failure to load is reported above with a clear
            # message rather than as a traceback from the lifespan; the app does not own them, so they
            # are closed here.
            # On SIGTERM, requests still open get 5 s to finish: the server is down within 10 s,
            # whatever a client does (the upload job stops after its batch and resumes next start).
            uvicorn.run(
                create_app(settings, services=services),
                host=settings.host,
                port=settings.port,
                timeout_graceful_shutdown=5,
            )
        finally:
            if ui_process is not None:
                ui_process.terminate()
                ui_process.wait(timeout=10)
    finally:
        services.close()


def port_problem(host: str, port: int, how_to_change: str) -> str | None:
    """Why a server could not listen on ``host``:``port`` (a bind test), or None when it can.

    The test socket sets SO_REUSEADDR as uvicorn's does, so a port left in TIME_WAIT by a server that
    just stopped is not reported as busy; one that something listens on is.
    """
    shown = host or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {shown}: {exc.strerror}; give another address with --host or MMSEARCH_HOST"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {shown} is in use; pick another with {how_to_change}"
            if exc.errno == errno.EACCES:
                return (
                    f"port {port} on {shown} needs privileges to listen on; pick another with {how_to_change}"
                )
            return f"cannot listen on {shown} port {port}: {exc.strerror or exc}"
    return None


def _start_ui(settings: Settings, api_url: str) -> subprocess.Popen[bytes] | None:
    from app.cli.ui_command import start_ui, ui_url

    busy = port_problem(settings.ui_host, settings.ui_port, "MMSEARCH_UI_PORT, or run with --no-ui")
    if busy is not None:
        err_console.print(f"search UI not started: {busy}", markup=False)
        return None
    try:
        process = start_ui(settings, api_url)
    except RuntimeError as exc:
        err_console.print(f"search UI not started: {exc}")
        return None
    err_console.print(f"mmsearch search UI at {ui_url(settings)}")
    return process


def _ingest(services: Services, paths: list[Path]) -> None:
    """Index ``paths`` with the server's own store and models, showing the ingest progress bar."""
    from app.cli.index_commands import BarProgress
    from indexer.setup import ingestor_from_parts

    s = services
    ingestor = ingestor_from_parts(s.settings, s.store, s.media, s.embedder, s.text_embedder)
    with BarProgress(err_console) as progress:
        report = ingestor.ingest(paths, recursive=True, progress=progress)
    summary = ", ".join(f"{n} {status}" for status, n in report.summary().items())
    err_console.print(f"indexed: {summary} · {plural(s.store.count(), 'unit')} in the store", markup=False)


def _check_store(settings: Settings) -> None:
    from indexer.setup import open_store

    try:
        open_store(settings).close()
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc
