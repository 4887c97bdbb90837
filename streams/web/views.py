"""HTTP views of every worker (Faust web server): the operator console at ``/``, the JSON
API under ``/api/``, ``/healthz`` and ``/metrics``. The endpoints are documented in
streams/web/openapi.py, served at ``/api/openapi.json``.

Where answers come from:
- pauses, incidents, rollout, audit, command outcomes: the worker's read model of the
  compacted output topics (streams/web/readmodel.py): every worker answers alone.
- freshness, heartbeats, execution, drift: tables, which hold only a worker's own
  partitions: the request fans out to every member of the group and the answers are
  merged (streams/web/cluster.py); ``?local=true`` answers for this worker only.
- mutations publish an OpsCommand on ops.commands (the one path shared with
  `polymon ctl` and raw producers), wait up to ``api_command_wait_s`` for its audit
  entry, and answer 202 with the command id and the outcome if it is known.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, ClassVar

from faust.web import Request, Response, View

from streams import tracing
from streams.agents import canary, divergence, drift, execution, pause_acks
from streams.agents.health import scope_health, slo_windows
from streams.agents.membership import own_member_id
from streams.app import app, clock, codecs, metrics, settings, topic_specs, topics
from streams.control import health
from streams.control.incidents import response_times, review_missing
from streams.control.pauses import is_paused
from streams.incident_review import decisions_during, incident_review, trade_links, trades_during
from streams.peer_auth import is_peer
from streams.records import EvaluationReference, OpsAction, OpsCommand
from streams.web import api, observe
from streams.web.api import ApiError, BodyField, parse_query, scope_filter
from streams.web.auth import AuthError, Principal, authenticate, authorize
from streams.web.cluster import fan_out, local_answer, members, merge_rows, own_partitions, own_url
from streams.web.openapi import openapi_document
from streams.web.publish import CommandPublisher
from streams.web.readmodel import COMPACTED, TAILED, ReadModel

log = logging.getLogger(__name__)
read_model = ReadModel(codecs, settings.audit_tail, pause_view=divergence.view,
                       pause_log=pause_acks.log)
publisher = CommandPublisher(topics.ops_commands, codecs["OpsCommand"],
                             settings.input_partitioner)


@app.task
async def run_read_model() -> None:
    names = {name: settings.topic(name) for name in (*COMPACTED, TAILED)}
    partitions = {name: topic_specs[name].partitions for name in names}
    await read_model.run(settings.kafka_bootstrap, names, partitions,
                         client_id=f"{settings.worker_id}-read-model")


Reply = dict[str, Any] | tuple[int, dict[str, Any]]


class ApiView(View):
    """Errors as JSON with a precise message; every answer counted by route template."""

    route: ClassVar[str] = ""

    async def answer(self, request: Request, handler: Callable[[], Awaitable[Reply]],
                     read: bool = True) -> Response:
        headers: dict[str, str] = {}
        try:
            if read and settings.api_read_requires_token and not from_peer(request):
                authorize(principal(request), "read")
            reply = await handler()
            status, body = reply if isinstance(reply, tuple) else (200, reply)
        except AuthError as exc:
            status, body, headers = exc.status, {"error": exc.message}, exc.headers
        except ApiError as exc:
            status, body = exc.status, {"error": exc.message}
        except Exception:  # a bug: say so as JSON, keep serving
            log.exception("%s %s failed", request.method, request.path)
            status, body = 500, {"error": "internal error (the worker's log has the details)"}
        metrics.api_requests.labels(request.method, self.route, str(status)).inc()
        if status >= 400:
            body = {**body, "status": status}
        return self.json(body, status=status, headers=headers or None)

    def params(self, request: Request) -> dict[str, Any]:
        """The route's query parameters (api.ROUTE_QUERIES, which the document lists too);
        any other, a repeated or a malformed one: 400."""
        return parse_query(request.query, api.ROUTE_QUERIES.get(self.route, {}))


def page(path: str) -> Callable[[type[ApiView]], type[ApiView]]:
    def register(view: type[ApiView]) -> type[ApiView]:
        view.route = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)  # the label, without regexes
        return app.page(path)(view)  # type: ignore[return-value]

    return register


def principal(request: Request) -> Principal:
    return authenticate(request.headers.get("Authorization"), settings.api_tokens)


def from_peer(request: Request) -> bool:
    """Signed by another worker of this deployment (streams.peer_auth)."""
    return is_peer(settings.peer_secret, request.method, own_url(), request.path, request.headers,
                   int(time.time() * 1000))


def now_ms() -> int:
    return clock.now_ms() or int(time.time() * 1000)


def pause_flags() -> dict[str, bool]:
    return {scope: bool(view["paused"]) for scope, view in read_model.pauses.items()}


# --- health, metrics, console -------------------------------------------------------------


def _assigned_partitions() -> int:
    try:
        return len(app.consumer.assignment())
    except Exception:  # the consumer is not started yet
        return 0


@app.page("/healthz")
class Health(View):
    async def get(self, request: Request) -> Response:
        assigned = _assigned_partitions()
        recovered = app.tables.recovery.completed.is_set()
        read_view = read_model.caught_up.is_set()
        ready = assigned > 0 and recovered and not app.rebalancing and read_view
        answer = {"worker_id": settings.worker_id, "ready": ready,
                  "assigned_partitions": assigned, "group": settings.group_id,
                  "read_model_caught_up": read_view}
        if from_peer(request):  # the member check; no one else learns the member id
            answer["group_member_id"] = own_member_id()
        return self.json(answer, status=200 if ready else 503)


@app.page("/metrics")
class MetricsPage(View):
    async def get(self, request: Request) -> Response:
        try:
            names = api.metric_names(request.query.getall("name[]", []))
        except ApiError as exc:  # Prometheus' clients read text, not our JSON errors
            return self.text(exc.message, status=exc.status)
        if not names or not metrics.LIVE_SERIES.issuperset(names):
            self._refresh()  # a scrape of the live counters only skips the table scan
        return self.bytes(metrics.render(names), content_type="text/plain; version=0.0.4")

    @staticmethod
    def _refresh() -> None:
        observe.refresh(
            metrics, now_ms=now_ms(), scope_health=owned_items(scope_health),
            threshold_s=settings.staleness_threshold_s,
            miss_factor=settings.heartbeat_miss_factor, pauses=read_model.pauses,
            incidents=list(read_model.incidents.values()), rollout=read_model.rollout,
            execution_state=owned_items(execution.execution_state),
            drift_state=owned_items(drift.drift_state),
            canary_state=owned_items(canary.canary_state),
            slo_windows=owned_items(slo_windows),
        )
        observe.runners(metrics, pause_acks.runner_rows(now_ms(), set(own_partitions())))


@app.page("/")
class Console(View):
    async def get(self, request: Request) -> Response:
        html = resources.files("streams.web").joinpath("static/console.html").read_text()
        return self.html(html, headers={"Cache-Control": "no-cache"})


@page("/api/openapi.json")
class OpenApi(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            self.params(request)
            return openapi_document(own_url(), settings.api_read_requires_token)

        return await self.answer(request, handler, read=False)


# --- reads: this worker's partitions, fanned out -----------------------------------------


@page("/api/scopes")
class Scopes(ApiView):
    """What each scope (on this worker's partitions) last reported."""

    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            prefix = self.params(request).get("scope", "")
            scopes: dict[str, Any] = {
                scope: health.summary(state) for scope, state in scope_health.items()
                if state is not None and state["events"] and scope.startswith(prefix)
            }
            return {"worker_id": settings.worker_id, "scopes": scopes}

        return await self.answer(request, handler)


def owned_items(table: Any) -> list[tuple[str, Any]]:
    """Table entries of the partitions this worker actively owns: a worker also holds
    standby copies of other partitions, which are not its to answer for."""
    owned = set(own_partitions())
    # table.data: the plain mapping (Table.items() goes through Faust's per-key hooks)
    return [(key, value) for key, value in list(table.data.items())
            if value and value.get("partition") in owned]


async def merged(request: Request, params: Mapping[str, Any], local: Callable[[], Any],
                 merge: Callable[[Any, Any], Any] = merge_rows) -> dict[str, Any]:
    if params.get("local"):
        return local_answer(local())
    query_args = {k: v for k, v in request.query.items() if k != "local"}
    return await fan_out(request.path, query_args, local, merge)


def _with_pauses(rows: dict[str, Any]) -> dict[str, Any]:
    flags = pause_flags()
    for scope, row in rows.items():
        row["paused_by"] = is_paused(scope, flags)
    return rows


@page("/api/freshness")
class Freshness(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            result = await merged(request, params, lambda: api.freshness_rows(
                owned_items(scope_health), now_ms(), settings.staleness_threshold_s,
                scope_filter(params), params.get("stale", False)))
            if params.get("local"):
                return result
            return {"scopes": _with_pauses(result["data"]), "workers": result["workers"],
                    "complete": result["complete"], "now_ms": now_ms()}

        return await self.answer(request, handler)


@page("/api/heartbeats")
class Heartbeats(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            result = await merged(request, params, lambda: api.heartbeat_rows(
                owned_items(scope_health), now_ms(), settings.heartbeat_miss_factor,
                scope_filter(params)))
            if params.get("local"):
                return result
            return {"scopes": _with_pauses(result["data"]), "workers": result["workers"],
                    "complete": result["complete"], "now_ms": now_ms()}

        return await self.answer(request, handler)


@page("/api/runners")
class Runners(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            result = await merged(request, params, lambda: pause_acks.runner_rows(
                now_ms(), set(own_partitions())))
            if params.get("local"):
                return result
            return {"runners": result["data"], "workers": result["workers"],
                    "complete": result["complete"], "now_ms": now_ms()}

        return await self.answer(request, handler)


@page("/api/execution")
class Execution(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            result = await merged(request, params, lambda: api.execution_rows(
                owned_items(execution.execution_state), scope_filter(params)))
            if params.get("local"):
                return result
            return {"scopes": result["data"], "workers": result["workers"],
                    "complete": result["complete"], "now_ms": now_ms()}

        return await self.answer(request, handler)


@page("/api/drift")
class Drift(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            result = await merged(request, params, lambda: api.drift_rows(
                owned_items(drift.drift_state), owned_items(canary.canary_state),
                scope_filter(params)))
            if params.get("local"):
                return result
            return {"models": result["data"], "workers": result["workers"],
                    "complete": result["complete"], "now_ms": now_ms()}

        return await self.answer(request, handler)


@page("/api/slos")
class Slos(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            result = await merged(request, params, lambda: api.slo_rows(
                owned_items(slo_windows), scope_filter(params)))
            if params.get("local"):
                return result
            return {"slos": result["data"], "workers": result["workers"],
                    "complete": result["complete"], "now_ms": now_ms()}

        return await self.answer(request, handler)


# --- reads: the read model, the same on every worker -------------------------------------


@page("/api/incidents")
class Incidents(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            everything = list(read_model.incidents.values())
            counts = {state: sum(1 for i in everything if i["state"] == state)
                      for state in api.INCIDENT_STATES}
            return {"incidents": api.select_incidents(everything, params), "counts": counts}

        return await self.answer(request, handler)


@page("/api/incidents/stats")
class IncidentStats(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            self.params(request)
            return {"families": response_times(list(read_model.incidents.values()))}

        return await self.answer(request, handler)


def known_incident(incident_id: str) -> dict[str, Any]:
    api.incident_path_id(incident_id)
    incident = read_model.incidents.get(incident_id)
    if incident is None:
        raise ApiError(404, f"unknown incident {incident_id}")
    return incident


@page("/api/incidents/{incident_id}")
class IncidentDetail(ApiView):
    async def get(self, request: Request, incident_id: str) -> Response:
        async def handler() -> Reply:
            self.params(request)
            incident = known_incident(incident_id)
            # the trade envelopes of its scope in its window, from the audit tail
            trades = trades_during(incident, read_model.trades, now_ms())
            return {**incident, "trades": trade_links(trades)}

        return await self.answer(request, handler)


@page("/api/incidents/{incident_id}/review")
class IncidentReview(ApiView):
    async def get(self, request: Request, incident_id: str) -> Response:
        async def handler() -> Reply:
            self.params(request)
            incident = known_incident(incident_id)
            now = now_ms()
            decisions = decisions_during(incident, read_model.audit, now)
            trades = trades_during(incident, read_model.trades, now)
            return {"incident_id": incident_id, "state": incident["state"],
                    "markdown": incident_review(incident, decisions, now, trades),
                    "trades": trade_links(trades)}

        return await self.answer(request, handler)


@page("/api/pauses")
class Pauses(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            match = scope_filter(params)
            wanted = params.get("paused")
            pauses = {scope: view for scope, view in sorted(read_model.pauses.items())
                      if match.matches(scope) and (wanted is None or view["paused"] == wanted)}
            return {"pauses": pauses,
                    "paused": sorted(s for s, v in read_model.pauses.items() if v["paused"])}

        return await self.answer(request, handler)


@page("/api/rollout")
class Rollout(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            match = scope_filter(params)
            return {"ladder": api.STAGES,
                    "rollout": {scope: view for scope, view in sorted(read_model.rollout.items())
                                if match.matches(scope)}}

        return await self.answer(request, handler)


@page("/api/rollout/{model}")
class RolloutDetail(ApiView):
    async def get(self, request: Request, model: str) -> Response:
        async def handler() -> Reply:
            self.params(request)
            scope = api.rollout_scope(model)
            view = read_model.rollout.get(scope)
            if view is None:
                raise ApiError(404, f"no rollout state for {scope} on control.rollout")
            return view

        return await self.answer(request, handler)


@page("/api/audit")
class Audit(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            params = self.params(request)
            return {"entries": api.select_audit(read_model.audit_entries(), params)}

        return await self.answer(request, handler)


@page("/api/commands/{command_id}")
class CommandOutcome(ApiView):
    async def get(self, request: Request, command_id: str) -> Response:
        async def handler() -> Reply:
            self.params(request)
            api.command_path_id(command_id)
            outcome = read_model.outcomes.get(command_id)
            if outcome is None:
                raise ApiError(404, f"no outcome for command {command_id} (unknown, or not "
                               "applied yet)")
            return {"command_id": command_id, "status": "done", "outcome": outcome}

        return await self.answer(request, handler)


@page("/api/workers")
class Workers(ApiView):
    async def get(self, request: Request) -> Response:
        async def handler() -> Reply:
            self.params(request)
            return {"worker_id": settings.worker_id, "url": own_url(),
                    "members": [{"url": url, "partitions": parts}
                                for url, parts in sorted(members().items())],
                    "read_model": {"caught_up": read_model.caught_up.is_set(),
                                   "records": read_model.applied,
                                   "error": read_model.last_error_kind}}

        return await self.answer(request, handler)


# --- mutations: operator commands through ops.commands -----------------------------------


Build = Callable[[dict[str, Any]], tuple[str, str | None]]


async def submit(request: Request, right: str, action: OpsAction,
                 fields: Mapping[str, BodyField], path: Callable[[], object],
                 build: Build,
                 more: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Reply:
    """Authenticate (401), authorize (403), validate header, body and ``path`` parameters
    (400), check the state (404/409), publish the command, wait briefly for its outcome;
    202 with the command id."""
    who = principal(request)
    authorize(who, right)
    command_id = api.command_id(request.headers.get("Idempotency-Key"))
    body = api.parse_body(await request.read(), fields)
    requested = str(path())  # a malformed request is a 400 even under a used key
    previous = read_model.outcomes.get(command_id)
    if previous is not None:  # a retry with the same Idempotency-Key: the same answer
        differences = api.reuse_differences(previous, who.actor, action.value, requested,
                                            body)
        if differences:
            raise ApiError(409, f"Idempotency-Key {command_id} was used for another request "
                           f"({previous['action']} {previous['scope']}); this one differs "
                           f"in {', '.join(differences)}: send a new key")
        return 202, reply(command_id, previous["scope"], action,
                          previous["evidence"].get("target") or None, who.actor, previous)
    scope, target = build(body)
    command = OpsCommand(command_id=command_id, scope=scope, action=action, actor=who.actor,
                         reason=body["reason"], target=target,
                         issued_time_ms=int(time.time() * 1000), **(more(body) if more else {}))
    # a valid W3C traceparent of the request goes on with the command: its decisions
    # (pause, incident, audit) name that trace (an invalid one is ignored, as the spec says)
    context = tracing.parse_traceparent(request.headers.get("traceparent"))
    try:
        await publisher.publish(command, [(tracing.TRACEPARENT, context.traceparent().encode())]
                                if context is not None else None)
    except Exception as exc:
        metrics.operator_commands.labels(action.value, "unpublished").inc()
        log.warning("command %s: not published to ops.commands: %r", command_id, exc)
        raise ApiError(503, f"could not publish the command to ops.commands "
                       f"({type(exc).__name__}; the worker's log has the details): "
                       "retry with the same Idempotency-Key") from None
    outcome = await read_model.wait_outcome(command_id, settings.api_command_wait_s)
    metrics.operator_commands.labels(action.value,
                                     outcome["decision"] if outcome else "pending").inc()
    return 202, reply(command_id, scope, action, target, who.actor, outcome)


def reply(command_id: str, scope: str, action: OpsAction, target: str | None, actor: str,
          outcome: dict[str, Any] | None) -> dict[str, Any]:
    return {"command_id": command_id, "action": action.value, "scope": scope,
            "target": target, "actor": actor, "status": "done" if outcome else "pending",
            "outcome": outcome, "status_url": f"/api/commands/{command_id}"}


class ScopeCommand(ApiView):
    action: ClassVar[OpsAction]
    right: ClassVar[str]

    async def post(self, request: Request, scope: str) -> Response:
        def build(body: dict[str, str]) -> tuple[str, str | None]:
            return api.check_scope(scope), None

        return await self.answer(request, lambda: submit(
            request, self.right, self.action, api.REASON_BODY, lambda: api.check_scope(scope),
            build), read=False)


@page("/api/scopes/{scope:.+}/pause")
class PauseScope(ScopeCommand):
    action = OpsAction.PAUSE
    right = "pause"


@page("/api/scopes/{scope:.+}/resume")
class ResumeScope(ScopeCommand):
    action = OpsAction.RESUME
    right = "resume"


@page("/api/scopes/{scope:.+}/rollback")
class RollbackScope(ApiView):
    async def post(self, request: Request, scope: str) -> Response:
        def build(body: dict[str, str]) -> tuple[str, str | None]:
            target_scope = api.rollback_scope(scope)
            api.check_rollback(target_scope, read_model.rollout.get(target_scope),
                               body["to_stage"])
            return target_scope, body["to_stage"]

        return await self.answer(request, lambda: submit(
            request, "rollback", OpsAction.ROLLBACK, api.ROLLBACK_BODY,
            lambda: api.rollback_scope(scope), build), read=False)


@page("/api/rollout/{model}/promote")
class PromoteModel(ApiView):
    async def post(self, request: Request, model: str) -> Response:
        def build(body: dict[str, str]) -> tuple[str, str | None]:
            target_scope = api.rollout_scope(model)
            api.check_promotion(target_scope, read_model.rollout.get(target_scope),
                                body.get("to_stage"))
            return target_scope, body.get("to_stage")

        return await self.answer(request, lambda: submit(
            request, "promote", OpsAction.PROMOTE, api.PROMOTE_BODY,
            lambda: api.rollout_scope(model), build), read=False)


@page("/api/rollout/{model}/evaluation")
class ReportEvaluation(ApiView):
    """An evaluation result reported by an operator (EVALUATE): its reference, the version
    and whether it passed; a passing one clears REEVALUATION_REQUIRED."""

    async def post(self, request: Request, model: str) -> Response:
        def build(body: dict[str, str]) -> tuple[str, str | None]:
            target_scope = api.evaluation_scope(model)
            if read_model.rollout.get(target_scope) is None:
                raise ApiError(404, f"no rollout state for {target_scope} on control.rollout")
            return target_scope, body["model_version"]

        def evaluation(body: dict[str, str]) -> dict[str, Any]:
            return {"evaluation": EvaluationReference(evaluation_id=body["evaluation_id"],
                                                      passed=body["result"] == "PASSED")}

        return await self.answer(request, lambda: submit(
            request, "promote", OpsAction.EVALUATE, api.EVALUATION_BODY,
            lambda: api.evaluation_scope(model), build, evaluation), read=False)


class IncidentCommand(ApiView):
    action: ClassVar[OpsAction]
    right: ClassVar[str]
    fields: ClassVar[Mapping[str, BodyField]] = api.REASON_BODY

    async def post(self, request: Request, incident_id: str) -> Response:
        def build(body: dict[str, Any]) -> tuple[str, str | None]:
            incident = known_incident(incident_id)
            if incident["state"] == "RESOLVED":
                raise ApiError(409, f"incident {incident_id} is already resolved")
            if self.action is OpsAction.ACK and incident["state"] == "ACKNOWLEDGED":
                raise ApiError(409, f"incident {incident_id} is already acknowledged by "
                               f"{incident['acknowledged_by']}")
            if self.action is OpsAction.RESOLVE:
                missing = review_missing(incident["severity"], body.get("root_cause"),
                                         body.get("follow_ups", []))
                if missing is not None:  # the request is well formed: the incident's state
                    raise ApiError(409, f"incident {incident_id}: {missing}")
            return incident["scope"], incident_id

        def review(body: dict[str, Any]) -> dict[str, Any]:
            if self.action is not OpsAction.RESOLVE:
                return {}
            return {"root_cause": body.get("root_cause"),
                    "follow_ups": body.get("follow_ups", [])}

        return await self.answer(request, lambda: submit(
            request, self.right, self.action, self.fields,
            lambda: api.incident_path_id(incident_id), build, review), read=False)


@page("/api/incidents/{incident_id}/ack")
class AckIncident(IncidentCommand):
    action = OpsAction.ACK
    right = "ack"


@page("/api/incidents/{incident_id}/resolve")
class ResolveIncident(IncidentCommand):
    action = OpsAction.RESOLVE
    right = "resolve"
    fields = api.RESOLVE_BODY
