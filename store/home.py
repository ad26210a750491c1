"""Where cutloop keeps its files: $CUTLOOP_HOME, else the user's XDG cache directory."""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from platformdirs import user_cache_dir

logger = logging.getLogger(__name__)


def home_path() -> Path:
    """$CUTLOOP_HOME or the default, not created (for checks that must leave no trace)."""
    return Path(os.environ.get("CUTLOOP_HOME") or user_cache_dir("cutloop"))


def cutloop_home() -> Path:
    home = home_path()
    home.mkdir(parents=True, exist_ok=True)
    return home


def node_home() -> Path:
    """Where the actors on this Ray node keep their large files (checkpoints, training
    state): $CUTLOOP_NODE_HOME, set on a node that shares no filesystem with the
    launcher, else cutloop_home()."""
    home = Path(os.environ.get("CUTLOOP_NODE_HOME") or cutloop_home())
    home.mkdir(parents=True, exist_ok=True)
    return home


IDENTITY_FILE = "campaign-id"


def campaign_identity(database_url: str, campaign_id: int) -> str:
    """Which stored campaign a directory belongs to (the URL hashed: it may hold a password)."""
    return f"{hashlib.sha256(database_url.encode()).hexdigest()[:16]}:{campaign_id}"


def claim_directory(directory: Path, identity: str) -> None:
    """Make `directory` the campaign's own. Files left there by another campaign of the
    same name (another database, or a deleted one) are moved aside, never reused: a stale
    training state or checkpoint must not leak into this campaign."""
    marker = directory / IDENTITY_FILE
    if directory.exists() and (not marker.is_file() or marker.read_text() != identity):
        moment = datetime.now(UTC)
        aside = directory.with_name(f"{directory.name}.replaced-{moment:%Y%m%dT%H%M%S%f}")
        directory.rename(aside)
        logger.warning("moved files of another campaign named %s to %s", directory.name, aside)
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(identity)
