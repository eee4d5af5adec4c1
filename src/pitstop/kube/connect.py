"""Reaching a Kubernetes API: where the credentials come from, and a small raw-JSON layer.

Credentials are resolved the way kubectl (client-go) resolves them, with the official client's
loaders doing the work:

1. an explicit kubeconfig path (``--kubeconfig``), with ``context`` or its current-context;
2. else ``$KUBECONFIG`` (a ``:``-separated list of files, merged);
3. else ``~/.kube/config`` when it exists;
4. else the in-cluster service account (``KUBERNETES_SERVICE_HOST``/``_PORT`` and the token
   and CA under ``/var/run/secrets/kubernetes.io/serviceaccount``; the token is re-read as
   the kubelet rotates it).

A kubeconfig user may be a client certificate, a token, a token file, or an exec credential
plugin (EKS ``aws eks get-token``, GKE ``gke-gcloud-auth-plugin``, AKS ``kubelogin``): the
plugin runs with ``KUBERNETES_EXEC_INFO`` set, may answer with a token or a client
certificate, in ``client.authentication.k8s.io/v1`` or ``v1beta1``, and a token with an
``expirationTimestamp`` is fetched again once it expires.

Requests go through the official client's :class:`~kubernetes.client.ApiClient` (its TLS,
proxy and auth handling) but bodies stay JSON dicts: pitstop reads a handful of fields from
thousands of pods, and building the generated models for each would cost more than the
request itself. Every LIST is paginated with ``limit``/``continue``.

This module is the only one in pitstop that imports the ``kubernetes`` package (and its
``urllib3``): an import-linter contract in ``pyproject.toml`` keeps it so. The rest of pitstop
sees :class:`KubeApi` — requests by path, JSON answers, :class:`~pitstop.backend.BackendError`
for a request that got no answer — and :func:`connect`.

Key material: the loader writes inline keys and certificates (``client-key-data`` and the
like) to files, which pitstop keeps in a private directory of its own that no killed process
leaves behind for long (:mod:`pitstop.kube.keydir`). Messages name the server without the
credentials a ``server`` URL may carry (:mod:`pitstop.kube.redact`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader

from pitstop.backend import BackendError
from pitstop.kube.keydir import key_dir
from pitstop.kube.redact import redact, redact_url

__all__ = ["IN_CLUSTER_DIR", "ApiAnswer", "KubeApi", "connect"]

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LIST_PAGE = 500  # items per LIST page, as kubectl's --chunk-size default
_CONNECT_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """One HTTP answer: the status and the decoded JSON body (``{}`` when there is none)."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status <= 299

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("reason") or f"HTTP {self.status}")

    def causes(self) -> list[str]:
        details = self.body.get("details") or {}
        return [str(c.get("reason", "")) for c in details.get("causes") or []]


class KubeApi:
    """A connection to one API server (one kubeconfig context, or in-cluster)."""

    def __init__(self, client: ApiClient, *, source: str, context: str | None) -> None:
        self._client = client
        self.source = source  # where the credentials came from, for messages
        self.context = context  # the kubeconfig context (None in-cluster)

    @property
    def host(self) -> str:
        """The server's URL as configured (it may carry credentials: see :attr:`server`)."""
        return str(self._client.configuration.host)

    @property
    def server(self) -> str:
        """The server's URL for messages: without a password or token in it."""
        return redact_url(self.host)

    def close(self) -> None:
        self._client.close()

    def with_host(self, host: str) -> KubeApi:
        """The same credentials against another address (one apiserver of several)."""
        mine = self._client.configuration
        mine.get_api_key_with_prefix("BearerToken")  # refreshes an expired exec/in-cluster token
        cfg = Configuration()
        # not the refresh hook: it would point the copy back at the kubeconfig's server
        for attr in ("ssl_ca_cert", "cert_file", "key_file", "verify_ssl", "tls_server_name",
                     "proxy"):
            setattr(cfg, attr, getattr(mine, attr))
        cfg.api_key = dict(mine.api_key)
        cfg.api_key_prefix = dict(mine.api_key_prefix)
        cfg.host = host
        return KubeApi(ApiClient(cfg), source=self.source, context=self.context)

    # -- requests --------------------------------------------------------------------------
    def request(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None,
                body: dict[str, Any] | None = None, content_type: str = "application/json",
                timeout: float | None = None) -> ApiAnswer:
        """One request; the answer whatever its status. A request that got no answer (refused,
        TLS failure, timeout, bad credentials configuration) raises :class:`BackendError`."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            req = self._client.param_serialize(
                method, path, query_params=query or [], header_params=headers, body=body,
                auth_settings=["BearerToken"])
            resp = self._client.call_api(
                *req, _request_timeout=(_CONNECT_TIMEOUT_S, timeout or _READ_TIMEOUT_S))
            raw = resp.read()
        except (urllib3.exceptions.HTTPError, OSError, ConfigException) as exc:
            raise BackendError(f"{method} {path}: no answer from the API server at "
                               f"{self.server} ({self.source}): {redact(str(exc))}") from None
        except ValueError as exc:  # http.client refuses a header value (a token with a newline)
            raise BackendError(f"{method} {path}: the request to {self.server} could not be "
                               f"sent ({self.source}): {redact(str(exc))}. Fix: check the "
                               "credentials of the kubeconfig user (a token with a stray "
                               "newline or space)") from None
        data: dict[str, Any] = {}
        if raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = {"message": raw[:300].decode("utf-8", "replace")}
            data = decoded if isinstance(decoded, dict) else {"items": decoded}
        return ApiAnswer(int(resp.status), data)

    def get(self, path: str, query: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
        """GET that must succeed (BackendError otherwise)."""
        answer = self.request("GET", path, query=query)
        if not answer.ok:
            raise _failed("GET", path, answer)
        return answer.body

    def list(self, path: str, *, label_selector: str | None = None,
             field_selector: str | None = None, limit: int = LIST_PAGE) -> list[dict[str, Any]]:
        """Every item of a collection, page by page (``limit``/``continue``). A continue token
        that expired (410) restarts the list: the result is always one consistent snapshot."""
        for _attempt in range(3):
            items: list[dict[str, Any]] = []
            token = ""
            while True:
                query: list[tuple[str, Any]] = [("limit", limit)]
                if label_selector:
                    query.append(("labelSelector", label_selector))
                if field_selector:
                    query.append(("fieldSelector", field_selector))
                if token:
                    query.append(("continue", token))
                answer = self.request("GET", path, query=query)
                if answer.status == 410 and token:
                    break  # the snapshot expired between pages: list again from the start
                if not answer.ok:
                    raise _failed("LIST", path, answer)
                items.extend(answer.body.get("items") or [])
                token = str((answer.body.get("metadata") or {}).get("continue") or "")
                if not token:
                    return items
        raise BackendError(f"LIST {path}: the list kept changing faster than it could be read "
                           "(410 Gone three times); retry")


def _failed(verb: str, path: str, answer: ApiAnswer) -> BackendError:
    hint = {401: " (the credentials were refused: check the kubeconfig user or token)",
            403: " (permission denied: the identity lacks this verb on this resource)"}
    return BackendError(f"{verb} {path}: HTTP {answer.status}: {redact(answer.message)}"
                        f"{hint.get(answer.status, '')}")


def _home_kubeconfig(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or os.path.expanduser("~")) / ".kube" / "config"


def connect(kubeconfig: str | None = None, context: str | None = None, *,
            in_cluster_dir: Path = IN_CLUSTER_DIR,
            environ: Mapping[str, str] | None = None) -> KubeApi:
    """Connect as kubectl would (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    path = kubeconfig or env.get("KUBECONFIG") or ""
    if not path and _home_kubeconfig(env).is_file():
        path = str(_home_kubeconfig(env))
    cfg = Configuration()
    if path:
        try:
            contexts, active = kube_config.list_kube_config_contexts(config_file=path)
            names = [c["name"] for c in contexts]
            if context is not None and context not in names:
                raise BackendError(f"kubeconfig {path} has no context {context!r} (it has: "
                                   f"{', '.join(names) or 'none'})")
            name = context or (active or {}).get("name")
            keys = key_dir(env)  # inline keys go there, not to the shared temporary directory
            kube_config.load_kube_config(config_file=path, context=name,
                                         client_configuration=cfg, persist_config=False,
                                         temp_file_path=str(keys))
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"cannot use kubeconfig {path} (context {context or 'current'})"
                               f": {redact(str(exc))}") from None
        return KubeApi(ApiClient(cfg), source=f"kubeconfig {path}, context {name}",
                       context=name)
    if context is not None:
        raise BackendError(f"context {context!r} asked for, but there is no kubeconfig (no "
                           "--kubeconfig, no $KUBECONFIG, no ~/.kube/config)")
    if not env.get("KUBERNETES_SERVICE_HOST"):
        raise BackendError("no Kubernetes credentials: pass a kubeconfig, set $KUBECONFIG, "
                           "create ~/.kube/config, or run inside a pod with a service account")
    try:
        InClusterConfigLoader(token_filename=str(in_cluster_dir / "token"),
                              cert_filename=str(in_cluster_dir / "ca.crt"),
                              environ=env).load_and_set(cfg)
    except (ConfigException, OSError) as exc:
        raise BackendError(f"in-cluster config failed ({in_cluster_dir}): {redact(str(exc))}"
                           ) from None
    return KubeApi(ApiClient(cfg), source=f"in-cluster service account ({in_cluster_dir})",
                   context=None)
