"""What an operator can see from outside: Prometheus metrics and a health endpoint.

No Discord here. The bot hands in small callables for its health (is the
gateway connected, does the database answer) and calls the recording methods
of :class:`BotMetrics`; agent.ai request times come from an aiohttp trace on the
shared HTTP session, so the agent.ai client never imports this module.

Each :class:`BotMetrics` has its own registry, so a process (or a test) may hold
several bots without their numbers mixing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4  # read by every Prometheus

log = logging.getLogger(__name__)

DATABASE_PROBE_SECONDS = 3.0
# agent.ai answers in about a second; a retrying call may take a minute.
AGENT_AI_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
# Discord allows 3 s to acknowledge an interaction.
ACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0)


class BotMetrics:
    """The bot's counters, gauges and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "avatarbot_jobs",
            "Jobs this process ran to their end, by final state.",
            ["state"],
            registry=self.registry,
        )
        self.queue_length = Gauge(
            "avatarbot_queue_length",
            "Jobs submitted through this process that are waiting in the queue.",
            registry=self.registry,
        )
        self.agent_ai_requests = Counter(
            "avatarbot_agent_ai_requests",
            "HTTP requests to agent.ai, by outcome (the HTTP status, or 'error').",
            ["outcome"],
            registry=self.registry,
        )
        self.agent_ai_seconds = Histogram(
            "avatarbot_agent_ai_request_seconds",
            "Time from sending a request to agent.ai to its response headers (or its failure).",
            buckets=AGENT_AI_BUCKETS,
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "avatarbot_interaction_ack_seconds",
            "Time from an interaction's creation to the bot's acknowledgement of it.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.unknown_interactions = Counter(
            "avatarbot_unknown_interactions",
            "Acknowledgements Discord refused as too late (Unknown interaction, 10062).",
            registry=self.registry,
        )

    def job_ended(self, state: str) -> None:
        self.jobs.labels(state=state).inc()

    def queue_length_is(self, length: int) -> None:
        self.queue_length.set(length)

    def interaction_acked(self, seconds: float) -> None:
        self.ack_seconds.observe(max(0.0, seconds))

    def interaction_unknown(self) -> None:
        self.unknown_interactions.inc()

    def agent_ai_request(self, outcome: str, seconds: float) -> None:
        self.agent_ai_requests.labels(outcome=outcome).inc()
        self.agent_ai_seconds.observe(seconds)

    def agent_ai_trace(self, base_url: str) -> aiohttp.TraceConfig:
        """A trace for the shared session that times the requests to ``base_url`` only."""
        prefix = base_url.rstrip("/") + "/"
        trace = aiohttp.TraceConfig()

        async def started(
            _session: aiohttp.ClientSession,
            context: SimpleNamespace,
            params: aiohttp.TraceRequestStartParams,
        ) -> None:
            context.agent_ai_started = (
                time.perf_counter() if str(params.url).startswith(prefix) else None
            )

        async def ended(
            _session: aiohttp.ClientSession,
            context: SimpleNamespace,
            params: aiohttp.TraceRequestEndParams,
        ) -> None:
            self._agent_ai_done(context, str(params.response.status))

        async def failed(
            _session: aiohttp.ClientSession,
            context: SimpleNamespace,
            _params: aiohttp.TraceRequestExceptionParams,
        ) -> None:
            self._agent_ai_done(context, "error")

        trace.on_request_start.append(started)
        trace.on_request_end.append(ended)
        trace.on_request_exception.append(failed)
        return trace

    def _agent_ai_done(self, context: SimpleNamespace, outcome: str) -> None:
        started = getattr(context, "agent_ai_started", None)
        if started is not None:
            self.agent_ai_request(outcome, time.perf_counter() - started)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class HealthChecks:
    """How the server learns the bot's health, without knowing what a bot is."""

    discord_connected: Callable[[], bool]
    database_answers: Callable[[], Awaitable[bool]]


async def probe(check: Callable[[], Awaitable[object]], what: str) -> bool:
    """True when ``check`` completes within :data:`DATABASE_PROBE_SECONDS`; never raises."""
    try:
        async with asyncio.timeout(DATABASE_PROBE_SECONDS):
            await check()
    except Exception as error:
        log.debug("health: %s did not answer (%s)", what, type(error).__name__)
        return False
    return True


class MetricsServer:
    """``GET /healthz`` and ``GET /metrics`` on ``host:port`` (port 0: any free port)."""

    def __init__(self, metrics: BotMetrics, health: HealthChecks, host: str, port: int) -> None:
        self._metrics = metrics
        self._health = health
        self.host = host
        self.port = port
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("metrics and health on http://%s:%d/ (/metrics, /healthz)", self.host, self.port)

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        discord_ok = self._health.discord_connected()
        database_ok = await self._health.database_answers()
        healthy = discord_ok and database_ok
        body = {
            "status": "ok" if healthy else "degraded",
            "discord": discord_ok,
            "database": database_ok,
        }
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics_page(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self._metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
        return response
