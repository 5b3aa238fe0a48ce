"""Who may read ``GET /metrics``: a guard the route handler is wrapped in, whatever produces the metrics.

Two settings, either or both:

* ``DATASTORY_METRICS_BIND=HOST:PORT``: ``datastory run`` also listens there (:func:`extra_listener`), and the
  metrics are served only to requests that arrived on that listener; on the public one ``/metrics`` is 404. Bind
  it to a private address (``127.0.0.1:9464``, a pod IP) that the scraper reaches and the internet does not.
* ``DATASTORY_METRICS_TOKEN``: a request must carry ``Authorization: Bearer <token>`` (compared in constant time);
  without it the answer is 401 with ``WWW-Authenticate: Bearer``. Prometheus sends it with
  ``authorization: {credentials: …}`` (or ``bearer_token``) in the scrape config.

With neither, ``/metrics`` is open, as before.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.config import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ANY_HOST = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class MetricsAccess:
    """The rule of the settings: the listener metrics are served on, and the bearer token they need."""

    token: str | None = None
    bind: tuple[str, int] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MetricsAccess:
        """``DATASTORY_METRICS_TOKEN`` and ``DATASTORY_METRICS_BIND``."""
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        return cls(token=token or None, bind=settings.metrics_address)

    def on_listener(self, request: web.Request) -> bool:
        """Whether the request arrived on the metrics listener (always, when there is none)."""
        if self.bind is None:
            return True
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        if not sockname:
            return False
        host, port = str(sockname[0]), int(sockname[1])
        want_host, want_port = self.bind
        return port == want_port and (want_host in _ANY_HOST or _same_host(host, want_host))

    def authorised(self, request: web.Request) -> bool:
        """Whether the request carries the bearer token (always, when none is set)."""
        if self.token is None:
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode())


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def guarded(handler: Handler, access: MetricsAccess) -> Handler:
    """``handler`` served only as :class:`MetricsAccess` allows: 404 off the metrics listener, 401 without the
    token."""

    async def guard(request: web.Request) -> web.StreamResponse:
        if not access.on_listener(request):
            raise web.HTTPNotFound()
        if not access.authorised(request):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="datastory-metrics"'},
                                       text="metrics need a bearer token (DATASTORY_METRICS_TOKEN)\n")
        return await handler(request)

    return guard


def extra_listener(runner: web.AppRunner, settings: Settings) -> web.TCPSite | None:
    """The second listener of ``DATASTORY_METRICS_BIND`` on the app's runner (not started), or None."""
    address = settings.metrics_address
    return None if address is None else web.TCPSite(runner, address[0], address[1])
