"""The Prometheus HTTP API as a :class:`~pitstop.backend.metrics.MetricSource`.

One :class:`PrometheusEndpoint` per cluster (the fleet's ``spec.clusters[].telemetry.
prometheus``): its base URL, an optional bearer-token file (read at every call, so a rotated
token is used at once; its content goes out as ``Authorization: Bearer …``), an optional CA
file (the server's certificate is verified against it; without one, the system's CAs) and a
timeout (connect, read and write each bounded by it).

Calls: ``GET /api/v1/query`` (instant), ``GET /api/v1/query_range`` (range) and ``GET
/api/v1/alerts`` (the alerts in state ``firing``; pending ones are left out). Every failure —
no endpoint for the cluster, the token or CA file unreadable, a connection refused or timed
out, an HTTP status other than 200, an answer that is not JSON or says ``status: error`` (a
PromQL syntax error among them), a result that is not a vector/matrix, a value that is NaN or
not a number — raises :class:`~pitstop.backend.metrics.MetricQueryError` with the endpoint
(credentials in its URL redacted) and what Prometheus said: the gate reports Error, never
Failed.
"""

from __future__ import annotations

import json
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import httpx

from pitstop.backend.metrics import FiringAlert, MetricQuery, MetricQueryError, Sample, Series
from pitstop.redact import redact_text

__all__ = ["DEFAULT_TIMEOUT_S", "MAX_ANSWER_BYTES", "PrometheusEndpoint", "PrometheusSource",
           "source_from_record"]

DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 32 * 1024 * 1024
"""Answers longer than this are refused (a query that selects far too many series)."""
_MAX_TOKEN_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PrometheusEndpoint:
    """Where one cluster's Prometheus answers, and how to reach it."""

    url: str
    bearer_token_file: str | None = None
    ca_file: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def shown(self) -> str:
        """The URL for messages, credentials redacted."""
        return redact_text(self.url)

    def to_record(self) -> dict[str, Any]:
        return {"url": self.url, "bearerTokenFile": self.bearer_token_file,
                "caFile": self.ca_file, "timeout": self.timeout_s}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PrometheusEndpoint:
        return cls(str(record["url"]), record.get("bearerTokenFile"), record.get("caFile"),
                   float(record.get("timeout", DEFAULT_TIMEOUT_S)))


class _NotANumber(ValueError):
    pass


def _number(text: object, what: str) -> float:
    try:
        value = float(str(text))
    except ValueError:
        raise _NotANumber(f"{what}: the value {str(text)[:40]!r} is not a number") from None
    if math.isnan(value):
        raise _NotANumber(f"{what}: the value is NaN (a ratio of nothing to nothing, or a "
                               "histogram without observations); the check cannot tell")
    return value


def _labels(item: Mapping[str, Any]) -> Mapping[str, str]:
    metric = item.get("metric")
    if not isinstance(metric, dict):
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in metric.items()})


def _shown_labels(labels: Mapping[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class PrometheusSource:
    """Reads each cluster's Prometheus (see the module docstring). ``transport`` replaces the
    network (tests of the error paths without a server)."""

    def __init__(self, endpoints: Mapping[str, PrometheusEndpoint], *,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.endpoints = dict(endpoints)
        self._transport = transport

    @property
    def name(self) -> str:
        shown = ", ".join(f"{c}: {e.shown}" for c, e in sorted(self.endpoints.items()))
        return f"prometheus ({shown})"

    # -- the MetricSource calls --------------------------------------------------------------
    def instant(self, cluster: str, query: MetricQuery, at: float) -> tuple[Sample, ...]:
        data = self._get(cluster, "/api/v1/query", {"query": query.promql, "time": f"{at:.3f}"},
                         query)
        result = self._result(data, "vector", cluster, query)
        out = []
        for item in result:
            labels = _labels(item)
            value = item.get("value")
            if not isinstance(value, list) or len(value) != 2:
                raise self._error(cluster, f"query {query.promql!r}: a sample without a value")
            try:
                number = _number(value[1], self._what(query, labels))
            except _NotANumber as exc:
                raise self._error(cluster, str(exc)) from None
            out.append(Sample(labels, number))
        return tuple(out)

    def range(self, cluster: str, query: MetricQuery, start: float, end: float,
              step_s: float) -> tuple[Series, ...]:
        if step_s <= 0 or end < start:
            raise self._error(cluster, f"query {query.promql!r}: a range from {start} to {end} "
                              f"by {step_s}s is not one")
        data = self._get(cluster, "/api/v1/query_range", {
            "query": query.promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
            "step": f"{step_s:g}"}, query)
        result = self._result(data, "matrix", cluster, query)
        out = []
        for item in result:
            labels = _labels(item)
            values = item.get("values")
            if not isinstance(values, list):
                raise self._error(cluster, f"query {query.promql!r}: a series without values")
            what = self._what(query, labels)
            try:
                points = tuple((float(p[0]), _number(p[1], what)) for p in values
                               if isinstance(p, list) and len(p) == 2)
            except (_NotANumber, ValueError) as exc:
                raise self._error(cluster, str(exc)) from None
            out.append(Series(labels, points))
        return tuple(out)

    def alerts(self, cluster: str) -> tuple[FiringAlert, ...]:
        data = self._get(cluster, "/api/v1/alerts", {}, None)
        alerts = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(alerts, list):
            raise self._error(cluster, "/api/v1/alerts: the answer holds no list of alerts")
        out = []
        for a in alerts:
            if not isinstance(a, dict) or a.get("state") != "firing":
                continue
            labels = MappingProxyType({str(k): str(v)
                                       for k, v in (a.get("labels") or {}).items()})
            out.append(FiringAlert(labels.get("alertname", ""), labels,
                                   _epoch(a.get("activeAt"))))
        return tuple(out)

    # -- HTTP --------------------------------------------------------------------------------
    def _endpoint(self, cluster: str) -> PrometheusEndpoint:
        endpoint = self.endpoints.get(cluster)
        if endpoint is None:
            raise MetricQueryError(
                f"cluster {cluster}: no Prometheus endpoint is configured. Fix: set "
                f"spec.clusters[{cluster}].telemetry.prometheus.url in the fleet")
        return endpoint

    def _error(self, cluster: str, text: str) -> MetricQueryError:
        where = self.endpoints.get(cluster)
        shown = where.shown if where is not None else "no endpoint"
        return MetricQueryError(redact_text(f"prometheus {shown} (cluster {cluster}): {text}"))

    def _what(self, query: MetricQuery, labels: Mapping[str, str]) -> str:
        return f"query {query.template or query.promql!r}, series {_shown_labels(labels)}"

    def _headers(self, cluster: str, endpoint: PrometheusEndpoint) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if endpoint.bearer_token_file:
            try:
                with open(endpoint.bearer_token_file, "rb") as f:
                    raw = f.read(_MAX_TOKEN_BYTES + 1)
            except OSError as exc:
                raise self._error(cluster, f"cannot read bearerTokenFile "
                                  f"{endpoint.bearer_token_file}: {exc.strerror}") from None
            token = raw.decode("utf-8", "replace").strip()
            if not token or len(raw) > _MAX_TOKEN_BYTES or any(c in token for c in "\r\n"):
                raise self._error(cluster, f"bearerTokenFile {endpoint.bearer_token_file} "
                                  "holds no token (one line of text is needed)")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _verify(self, cluster: str, endpoint: PrometheusEndpoint) -> ssl.SSLContext | bool:
        if not endpoint.ca_file:
            return True
        try:
            return ssl.create_default_context(cafile=endpoint.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise self._error(cluster, f"cannot load caFile {endpoint.ca_file}: {exc}") from None

    def _get(self, cluster: str, path: str, params: Mapping[str, str],
             query: MetricQuery | None) -> Any:
        endpoint = self._endpoint(cluster)
        headers = self._headers(cluster, endpoint)
        url = endpoint.url.rstrip("/") + path
        what = f"query {query.promql!r}" if query is not None else path
        chunks: list[bytes] = []
        size = 0
        try:
            with httpx.Client(verify=self._verify(cluster, endpoint),
                              timeout=httpx.Timeout(endpoint.timeout_s),
                              transport=self._transport, follow_redirects=False) as client, \
                    client.stream("GET", url, params=params, headers=headers) as response:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:  # read no further: a query far too wide
                        raise self._error(cluster, f"{what}: the answer is larger than "
                                          f"{MAX_ANSWER_BYTES // (1024 * 1024)} MiB; narrow "
                                          "the query")
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise self._error(cluster, f"{what}: no answer within {endpoint.timeout_s:g}s "
                              "(timeout)") from None
        except httpx.HTTPError as exc:
            raise self._error(cluster, f"{what}: cannot reach it: "
                              f"{type(exc).__name__}: {exc}") from None
        body = b"".join(chunks)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("status") == "error":
            raise self._error(cluster, f"{what}: Prometheus says {payload.get('errorType', '')}"
                              f": {payload.get('error', '')} (HTTP {response.status_code})")
        if response.status_code != 200:
            raise self._error(cluster, f"{what}: HTTP {response.status_code} "
                              f"{response.reason_phrase}: {body[:200].decode('utf-8', 'replace')}")
        if not isinstance(payload, dict) or payload.get("status") != "success":
            raise self._error(cluster, f"{what}: the answer is not a Prometheus API answer")
        return payload.get("data")

    def _result(self, data: Any, kind: str, cluster: str,
                query: MetricQuery) -> list[dict[str, Any]]:
        if not isinstance(data, dict):
            raise self._error(cluster, f"query {query.promql!r}: the answer holds no data")
        got = data.get("resultType")
        if got != kind:
            raise self._error(cluster, f"query {query.promql!r}: the result is a {got}, not a "
                              f"{kind}; a gate needs an expression that gives a {kind} (e.g. "
                              "wrap a scalar in vector(…))")
        result = data.get("result")
        if not isinstance(result, list):
            raise self._error(cluster, f"query {query.promql!r}: the result is not a list")
        return [r for r in result if isinstance(r, dict)]


def _epoch(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def source_from_record(record: Mapping[str, Any] | None) -> PrometheusSource | None:
    """The source a run's backend record names (``{cluster: endpoint record}``), None when it
    names no endpoint."""
    if not record:
        return None
    return PrometheusSource({str(c): PrometheusEndpoint.from_record(e)
                             for c, e in record.items()})
