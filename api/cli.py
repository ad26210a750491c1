"""The `cutloop` command: the orchestrator's commands plus `serve` (the API lives above
the orchestrator, so it adds its command here)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer

from orchestrator.cli import app, fail

TOKEN_ENV = "CUTLOOP_API_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to launch on (default: this machine's, started if none)."),
    ] = None,
) -> None:
    """Serve the REST API and the dashboard (http://HOST:PORT/). Campaigns launched here
    run as detached drivers on the Ray cluster: restarting the server neither stops nor
    repeats them. With $CUTLOOP_API_TOKEN set, every mutating route needs it as a bearer
    token; a non-loopback address is refused without one."""
    import uvicorn

    from api.app import create_app
    from api.state import ApiSettings
    from store.engine import database_url
    from store.home import cutloop_home

    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise fail(f"--host {host} is reachable from other machines: set {TOKEN_ENV} first")
    settings = ApiSettings(
        database_url=database_url(), home=str(cutloop_home()), token=token,
        ray_address=ray_address,
    )  # fmt: skip
    print(f"cutloop API on http://{host}:{port}/ (dashboard), /docs (OpenAPI)", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
