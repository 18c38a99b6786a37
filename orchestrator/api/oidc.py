"""OIDC checks for the machine callers: Pub/Sub push, Eventarc and Cloud Scheduler.

They call with ``Authorization: Bearer <ID token>``, signed by Google for a
service account. A call is accepted when the token's RS256 signature verifies
against Google's certificates (``OIDC_CERTS_URL``, cached as their Cache-Control
says), it has not expired, its issuer is Google, its ``aud`` is one of the
endpoint's audiences (a comma-separated setting) and its ``email`` is
PUSH_SERVICE_ACCOUNT with ``email_verified``. The email check is what keeps
strangers out: anyone can get a Google-signed token for their own account with
any audience.

Answers: 401 without a token or with one that does not verify; 403 for a valid
token of another account, and for every call while the endpoint's audience (or
PUSH_SERVICE_ACCOUNT) is unset; 503 when the certificates cannot be fetched.
Bodies say no more than that; the log says why. An unset audience lets calls in
only with LAXAI_PUSH_AUTH=none (local runs, emulators: they sign nothing); a set
audience is always checked, whatever LAXAI_PUSH_AUTH says.

google-auth is imported on first use, so a local install without the gcp extra
still serves the REST API.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import HTTPException, Request

from orchestrator.config import Settings
from orchestrator.config_lists import split_commas

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CLOCK_SKEW_SECONDS = 10
FETCH_TIMEOUT = 10.0
DEFAULT_MAX_AGE = 300.0  # when the certificate response names none
MIN_REFETCH = 30.0  # an unknown key id refetches at most this often (tokens with made-up ids are free to send)
_MAX_AGE = re.compile(r"max-age=(\d+)")


class CertsUnavailable(RuntimeError):
    """Google's certificates could not be fetched and none are cached."""


class CertCache:
    """Google's token-signing certificates ({key id: PEM}), fetched on demand and cached.

    ``request`` is a ``google.auth.transport.Request`` (default: the requests-based
    one); tests point ``url`` at a local server or pass their own ``request``.
    """

    def __init__(self, url: str, request: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.url = url
        self._request = request
        self._clock = clock
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = float("-inf")
        self._guard = threading.Lock()

    def certs(self, kid: str | None = None) -> Mapping[str, str]:
        """The current certificates; refetched when stale, or when ``kid`` is not among them."""
        with self._guard:
            now = self._clock()
            stale = now >= self._expires
            unknown = kid is not None and kid not in self._certs and now - self._fetched >= MIN_REFETCH
            if stale or unknown:
                try:
                    self._certs, max_age = self._fetch()
                    self._fetched, self._expires = now, now + max_age
                except Exception as exc:  # noqa: BLE001 - keep serving from the cache if we have one
                    if not self._certs:
                        raise CertsUnavailable(f"cannot fetch {self.url}: {exc}") from exc
                    log.warning("refreshing ID-token certificates failed (%s); using the cached ones", exc)
                    self._fetched, self._expires = now, now + MIN_REFETCH
            return dict(self._certs)

    def _fetch(self) -> tuple[dict[str, str], float]:
        request = self._request
        if request is None:
            from google.auth.transport.requests import Request as TransportRequest

            request = self._request = TransportRequest()
        response = request(url=self.url, method="GET", timeout=FETCH_TIMEOUT)
        if response.status != 200:
            raise CertsUnavailable(f"HTTP {response.status}")
        data = response.data.decode() if isinstance(response.data, bytes) else response.data
        certs = json.loads(data)
        if not isinstance(certs, dict) or not all(isinstance(v, str) for v in certs.values()):
            raise CertsUnavailable("not a {key id: certificate} object")
        control = {k.lower(): v for k, v in dict(response.headers).items()}.get("cache-control", "")
        found = _MAX_AGE.search(control)
        return certs, float(found.group(1)) if found else DEFAULT_MAX_AGE


class Refused(Exception):
    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


def audiences(raw: tuple[str, ...] | str | None) -> list[str]:
    """An audience setting's values (Settings parse them at start; text is accepted too)."""
    return split_commas(raw)


class OidcGate:
    """Decides whether a machine call may in, for endpoints named by their audience setting."""

    def __init__(self, settings: Settings, certs: CertCache | None = None):
        self.settings = settings
        self.certs = certs or CertCache(settings.OIDC_CERTS_URL)
        self._warned: set[str] = set()

    def _once(self, key: str, level: int, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.log(level, message)

    def check(self, authorization: str | None, audience_setting: str) -> dict[str, Any] | None:
        """The verified claims, None when checks are off (LAXAI_PUSH_AUTH=none), or Refused."""
        settings = self.settings
        accepted = audiences(getattr(settings, audience_setting))
        if not accepted:
            if settings.LAXAI_PUSH_AUTH == "none":
                self._once(f"open:{audience_setting}", logging.WARNING,
                           f"{audience_setting} is unset and LAXAI_PUSH_AUTH=none: accepting unsigned calls "
                           "(local runs only)")
                return None
            self._once(f"closed:{audience_setting}", logging.ERROR,
                       f"{audience_setting} is unset: refusing its calls (set it to the audience the caller "
                       "signs for, or LAXAI_PUSH_AUTH=none on a local run)")
            raise Refused(403, f"{audience_setting} unset")
        account = (settings.PUSH_SERVICE_ACCOUNT or "").strip().lower()
        if not account:
            self._once("no-account", logging.ERROR, "PUSH_SERVICE_ACCOUNT is unset: refusing push calls")
            raise Refused(403, "PUSH_SERVICE_ACCOUNT unset")
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "no bearer token")
        from google.auth import jwt

        try:
            kid = jwt.decode_header(token).get("kid")
        except Exception as exc:  # noqa: BLE001 - anything unreadable is refused
            raise Refused(401, f"unreadable token ({type(exc).__name__})") from exc
        certs = self.certs.certs(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(token, certs=certs, audience=accepted, clock_skew_in_seconds=CLOCK_SKEW_SECONDS)
        except Exception as exc:  # noqa: BLE001 - fail closed on any verification error
            raise Refused(401, f"token rejected: {exc}") from exc
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Refused(401, f"issuer {claims.get('iss')!r} is not Google")
        email = str(claims.get("email") or "").lower()
        if email != account or claims.get("email_verified") is not True:
            raise Refused(403, f"token of {email or 'no account'} (verified: {claims.get('email_verified')})")
        return claims


def require_caller(request: Request, audience_setting: str) -> dict[str, Any] | None:
    """Run the gate for a request; raises the HTTP answer on refusal (blocking: call off the event loop)."""
    gate: OidcGate = request.app.state.oidc
    try:
        return gate.check(request.headers.get("authorization"), audience_setting)
    except Refused as refused:
        log.warning("refused %s %s: %s", request.method, request.url.path, refused)
        if refused.status == 401:
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"}) from None
        raise HTTPException(403, "forbidden") from None
    except CertsUnavailable as exc:
        log.error("cannot verify %s %s: %s", request.method, request.url.path, exc)
        raise HTTPException(503, "unavailable, retry later", headers={"Retry-After": "10"}) from None
