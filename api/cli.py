"""The `cutloop` command: the orchestrator's commands plus `serve` (the API lives above
the orchestrator, so it adds its command here)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli import app, fail

TOKEN_ENV = "CUTLOOP_API_TOKEN"
LAUNCH_ENV = "CAMPAIGN_CONFIG"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _campaign_to_launch(path: Path | None):
    """The file's campaign, checked against the store before the server starts: a bad
    file, a problem `cutloop validate` names or a name taken by another campaign is one
    line and exit code 2."""
    if path is None:
        return None
    from api.autolaunch import store_campaign
    from orchestrator.config import CampaignConfigError, load_campaign
    from orchestrator.lifecycle import LifecycleError
    from orchestrator.validate import review_campaign
    from store.engine import database_url, make_engine, session_factory
    from store.schema import upgrade

    try:
        config = load_campaign(path)
        problems = review_campaign(config).problems
        if problems:
            raise CampaignConfigError("; ".join(map(str, problems)))
        url = database_url()
        upgrade(url)
        engine = make_engine(url)
        try:
            store_campaign(session_factory(engine), config)
        finally:
            engine.dispose()
    except (CampaignConfigError, LifecycleError) as error:
        raise fail(f"{LAUNCH_ENV} / --launch: {error}") from None
    return config


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to launch on ('auto': the one running on this machine; default: "
            "the head serve started before, else a new one)."
        ),
    ] = None,
    ray_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port of the Ray head serve starts when it has none (default: a free one).",
        ),
    ] = None,
    launch: Annotated[
        Path | None,
        typer.Option(
            envvar=LAUNCH_ENV,
            help="A campaign file to launch when the server starts: stored and queued on "
            "the first start, resumed after a restart, never run twice.",
        ),
    ] = None,
) -> None:
    """Serve the REST API and the dashboard (http://HOST:PORT/).

    Campaigns launched here run as detached drivers on the Ray cluster: restarting the
    server neither stops nor repeats them. With $CUTLOOP_API_TOKEN set, every mutating
    route needs it as a bearer token; a non-loopback address is refused without one."""
    import uvicorn

    from api.app import create_app
    from api.state import ApiSettings
    from orchestrator.ray_head import RayStartError, join_cluster
    from store.engine import database_url
    from store.home import cutloop_home

    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise fail(f"--host {host} is reachable from other machines: set {TOKEN_ENV} first")
    settings = ApiSettings(
        database_url=database_url(), home=str(cutloop_home()), token=token,
        launch=_campaign_to_launch(launch),
    )  # fmt: skip
    try:
        join_cluster(ray_address, ray_port)
    except RayStartError as error:
        raise fail(str(error)) from None
    print(f"cutloop API on http://{host}:{port}/ (dashboard), /docs (OpenAPI)", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
