"""Moved: the pipeline's cluster-wide health is exported by ONE worker process.

The collector that read it from Redis at scrape time now lives in
workers/cluster_metrics.py and runs only in the worker process holding the
lease ``{P}:metrics:exporter``: with it here, every ingress replica exported the
same cluster figures (and read Redis for them on every scrape). The ingress's
/metrics now carries only the ingress's own metrics (ingress/metrics.py).

This stand-in keeps ingress/metrics.py's view working unchanged and exports
nothing; it goes away with the four lines of that view that mount it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.registry import Collector


class PipelineCollector(Collector):
    """Exports nothing (see the module's docstring)."""

    def __init__(self, *_args, **_kwargs):
        pass

    def collect(self) -> Iterator:
        return iter(())
