"""Counts the requests asleep in ``HostThrottle.wait`` at once, overall and per host (a test helper).

The entry windows (``ingest.admission``) bound how many entries wait for their host's request slot; a gauge
wrapped around the real throttle checks that bound on whole polls. A request stops counting when the throttle
admits it, before the windows hear of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from ingest import politeness


class SleeperGauge:
    """Counts the requests for which ``counted(url)`` holds (e.g. article pages, not the feed documents)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, counted: Callable[[str], bool]) -> None:
        self.lock = threading.Lock()
        self.asleep = self.peak = self.waits = 0
        self.asleep_by_host: dict[str, int] = {}
        self.peak_by_host: dict[str, int] = {}
        original = politeness.HostThrottle.wait
        gauge = self

        def wait(throttle: politeness.HostThrottle, url: str) -> float:
            if not counted(url):
                return original(throttle, url)
            host = politeness.host_key(url)
            outer = politeness._ADMITTED.get()
            admitted = False

            def on_admitted() -> None:
                nonlocal admitted
                if not admitted:
                    admitted = True
                    with gauge.lock:
                        gauge.asleep -= 1
                        gauge.asleep_by_host[host] -= 1
                if outer is not None:
                    outer()

            with gauge.lock:
                gauge.asleep += 1
                gauge.waits += 1
                gauge.peak = max(gauge.peak, gauge.asleep)
                gauge.asleep_by_host[host] = gauge.asleep_by_host.get(host, 0) + 1
                gauge.peak_by_host[host] = max(gauge.peak_by_host.get(host, 0), gauge.asleep_by_host[host])
            with politeness.on_admission(on_admitted):
                return original(throttle, url)

        monkeypatch.setattr(politeness.HostThrottle, "wait", wait)
