"""``mmsearch ui``: run the Streamlit search UI, alone or (from ``mmsearch serve``) beside the API.

The UI is a separate process (``streamlit run ui/app.py``) that talks to the API over HTTP, so this
module only finds and starts it; it never imports the UI's code.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import err_console, print_error
from core.settings import Settings

EXIT_ERROR = 2


def ui_script() -> Path | None:
    """``ui/app.py`` of the installed package, or None when the ``ui`` extra (Streamlit) is missing."""
    if importlib.util.find_spec("streamlit") is None:
        return None
    spec = importlib.util.find_spec("ui")
    if spec is None or spec.origin is None:
        return None
    script = Path(spec.origin).parent / "app.py"
    return script if script.is_file() else None


def start_ui(settings: Settings, api_url: str) -> subprocess.Popen[bytes]:
    """Start the UI process on ``settings.ui_host``:``settings.ui_port``, talking to ``api_url``."""
    script = ui_script()
    if script is None:
        raise RuntimeError("the UI needs Streamlit: install the `ui` extra (pip install -e '.[ui]')")
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.address", settings.ui_host,
        "--server.port", str(settings.ui_port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",  # no "Deploy" button: this is the app, not a dev session
        # The upload box allows (and says) what the API accepts, not Streamlit's own 200 MB.
        "--server.maxUploadSize", str(upload_limit_mb(settings)),
    ]  # fmt: skip
    env = {**os.environ, "MMSEARCH_UI_API_URL": api_url}
    on_linux = sys.platform == "linux"
    return subprocess.Popen(command, env=env, preexec_fn=_die_with_parent if on_linux else None)


def upload_limit_mb(settings: Settings) -> int:
    """Streamlit's ``server.maxUploadSize`` (MiB) for the API's upload limit (``max_upload_bytes``)."""
    return max(1, settings.max_upload_bytes // 2**20)


def _die_with_parent() -> None:
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the server can end without running any
    # cleanup of ours: the kernel then stops the UI too (PR_SET_PDEATHSIG), instead of leaving an orphan.
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def ui_url(settings: Settings) -> str:
    """Where a browser reaches the UI."""
    host = "127.0.0.1" if settings.ui_host in ("0.0.0.0", "::", "") else settings.ui_host
    return f"http://{host}:{settings.ui_port}"


def ui(
    host: Annotated[str | None, typer.Option(help="Address to listen on (env MMSEARCH_UI_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port to listen on (env MMSEARCH_UI_PORT).")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="The REST API to use (env MMSEARCH_UI_API_URL; default: this machine).")
    ] = None,
) -> None:
    """Run the search UI (Streamlit) against a running API; `mmsearch serve` starts both together.

    The UI sends MMSEARCH_API_KEY to the API when it is set; its upload box takes files up to the
    API's MMSEARCH_MAX_UPLOAD_BYTES. Exit code 2 when Streamlit is not installed or the port is in use.
    """
    from app.cli.serve_command import port_problem

    settings = Settings.with_options(ui_host=host, ui_port=port, ui_api_url=api_url)
    busy = port_problem(settings.ui_host, settings.ui_port, "--port or MMSEARCH_UI_PORT")
    if busy is not None:
        print_error(busy)
        raise typer.Exit(code=EXIT_ERROR)
    try:
        process = start_ui(settings, settings.api_base_url())
    except RuntimeError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc
    err_console.print(f"mmsearch UI at {ui_url(settings)} (API: {settings.api_base_url()})")
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        code = process.wait()
    raise typer.Exit(code=code)
