#!/bin/sh
# The orchestrator service. It joins the cluster at $RAY_HEAD_ADDRESS as a node that
# offers no CPU, GPU or memory: only actors pinned to it run here — the campaign's driver
# and judge, beside CUTLOOP_HOME (the judge cache, campaign files). Then it migrates the
# store, serves the API and dashboard, and launches $CAMPAIGN_CONFIG (cutloop serve).
# The node keeps its files in $RAY_TMPDIR/ray (Ray would give it the head's temp dir),
# and the server joins the node that does: the one started here, even where several
# nodes share a machine. Arguments are passed on to `cutloop serve`.
set -eu
ray start --address="$RAY_HEAD_ADDRESS" --num-cpus=0 --num-gpus=0 --memory=0 \
    --object-store-memory=268435456 --temp-dir="${RAY_TMPDIR:-/tmp}/ray" --disable-usage-stats
exec cutloop serve --host 0.0.0.0 --port 8000 --ray-address auto "$@"
