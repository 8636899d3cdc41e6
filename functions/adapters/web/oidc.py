"""Knative Eventing's OIDC delivery tokens, verified (the only module using PyJWT).

With the ``authentication-oidc`` feature on, a broker delivering to a Trigger's subscriber sends
``Authorization: Bearer <JWT>``: a Kubernetes service-account token whose audience is the
subscriber's (``subscriber.audience``, here ``KATUNA_OIDC_AUDIENCE``), signed by the cluster's
service-account issuer. The issuer and its keys come from the API server
(``KATUNA_OIDC_ISSUER_URL``): ``/.well-known/openid-configuration`` and ``/openid/v1/jwks``,
read with the pod's CA and service-account token when it has them (the token over https only; a
redirect is not followed). Only RS256 and ES256 signatures are accepted; ``exp``, ``aud``,
``iss`` and ``sub`` are required, ``nbf`` honoured.
A valid token says only that the cluster signed it for this audience, which any pod can have
done: its subject, the sender's service account, is checked by the caller against
``KATUNA_OIDC_SUBJECTS`` (:mod:`functions.core.senders`).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import jwt

from functions.adapters.http_unredirected import unredirected_opener
from functions.core.errors import TemporaryError

ALGORITHMS = ["RS256", "ES256"]
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT_SECONDS = 10
LEEWAY_SECONDS = 30
COOLDOWN_SECONDS = 30
"""The least time between two reads of the issuer's keys for tokens naming a key they lack, so
tokens naming made-up keys cannot make the service ask the API server once each."""
RETRY_SECONDS = 5
"""How long a failed read of the issuer (its discovery document or its keys) is remembered:
deliveries in that time are answered 503 at once, saying why, rather than each asking it again
(discovery one delivery at a time, each up to :data:`TIMEOUT_SECONDS`; PyJWT's cooldown counts
only from a read that succeeded)."""
log = logging.getLogger("katuna.oidc")


def _unredirected(request: urllib.request.Request, context: ssl.SSLContext | None) -> Any:
    """``request`` opened at its own URL alone, a redirect failing as the ``HTTPError`` of its
    status: the discovery document's redirect is not followed, as PyJWT's client follows none of
    the key set's, for urllib would send the pod's service-account token on to whatever host it
    names, and take the issuer it names from there."""
    return unredirected_opener(context).open(request, timeout=TIMEOUT_SECONDS)


class IssuerUnreadable(Exception):
    """The issuer's discovery document names no issuer: ``KATUNA_OIDC_ISSUER_URL`` leads elsewhere."""


def _issuer_of(answer: Any, url: str) -> str:
    """The ``issuer`` the discovery document at ``url`` names; :class:`IssuerUnreadable` when it
    holds none (no JSON object, or one without that string), which no token is to blame for."""
    try:
        issuer = json.load(answer).get("issuer")
    except (ValueError, AttributeError) as exc:
        raise IssuerUnreadable(f"{url} holds no OpenID discovery document naming its issuer: {exc}") from exc
    if not isinstance(issuer, str) or not issuer:
        raise IssuerUnreadable(f"{url} holds no OpenID discovery document naming its issuer (no \"issuer\")")
    return issuer


class UnreadKey(TemporaryError):
    """A token names a key the issuer's keys lacked when last read, and they may not be read
    again yet (:data:`COOLDOWN_SECONDS`): the key may have been rotated in since, so it is a
    temporary error (the broker retries, where a refusal would dead-letter the event), and the
    caller counts it as a failed attempt of its sender
    (:mod:`functions.adapters.web.attempts`), as a token naming a made-up key is."""


class Verifier:
    """Checks delivery tokens for one audience against one issuer's published keys."""

    def __init__(self, audience: str, issuer_url: str, service_account: Path = SERVICE_ACCOUNT) -> None:
        self.audience = audience
        self.base = issuer_url.rstrip("/")
        self._service_account = service_account
        self._issuer: str | None = None
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._failed: tuple[float, str] | None = None
        self._reread: float | None = None

    def _headers(self) -> dict[str, str]:
        """The pod's service-account token, sent to the issuer over TLS alone: it holds the
        service's permissions, which a plain ``http://`` issuer would show whoever is on the way."""
        token = self._service_account / "token"
        secure = self.base.lower().startswith("https://")
        return {"Authorization": f"Bearer {token.read_text().strip()}"} if secure and token.is_file() else {}

    def _ssl_context(self) -> ssl.SSLContext | None:
        ca = self._service_account / "ca.crt"
        return ssl.create_default_context(cafile=str(ca)) if ca.is_file() else None

    def _refuse_while_failed(self) -> None:
        """``TemporaryError`` while the issuer's last failed read is under :data:`RETRY_SECONDS` old."""
        failed = self._failed
        if failed is not None and (ago := time.monotonic() - failed[0]) < RETRY_SECONDS:
            raise TemporaryError(f"the token issuer's keys could not be read {ago:.1f} s ago ({failed[1]}); "
                                 f"{self.base} is asked again after {RETRY_SECONDS} s")

    def _discover(self) -> tuple[str, jwt.PyJWKClient]:
        with self._lock:
            self._refuse_while_failed()
            if self._issuer is None or self._keys is None:
                request = urllib.request.Request(self.base + "/.well-known/openid-configuration",
                                                 headers=self._headers())
                with _unredirected(request, self._ssl_context()) as answer:
                    self._issuer = _issuer_of(answer, request.full_url)
                self._keys = jwt.PyJWKClient(self.base + "/openid/v1/jwks", headers=self._headers(),
                                             timeout=TIMEOUT_SECONDS, ssl_context=self._ssl_context(),
                                             cooldown_duration=COOLDOWN_SECONDS)
            return self._issuer, self._keys

    def subject(self, token: str) -> str | None:
        """The subject (``sub``) of ``token`` when it is a valid delivery token for this service,
        else None, a token naming a key the issuer's keys lack when read again for it included;
        ``TemporaryError`` when the issuer cannot be asked (a failed read is not tried again for
        :data:`RETRY_SECONDS`), :class:`UnreadKey` when the keys lacked its key when last read
        and may not be read again yet (:meth:`_key`)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if not kid:
                raise jwt.InvalidTokenError("the token names no key (kid)")
            issuer, keys = self._discover()
            key = self._key(keys, str(kid))
        except (jwt.PyJWKClientConnectionError, OSError, IssuerUnreadable) as exc:
            self._failed = (time.monotonic(), str(exc))
            raise TemporaryError(f"could not read the token issuer's keys from {self.base}: {exc}") from exc
        except jwt.PyJWKClientError as exc:
            raise TemporaryError(f"the token issuer's keys from {self.base} are unusable: {exc}") from exc
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            log.warning("refused an event delivery token: %s", exc)
            return None
        try:
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=issuer,
                                leeway=LEEWAY_SECONDS, options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.PyJWTError as exc:
            log.warning("refused an event delivery token: %s", exc)
            return None
        return str(claims["sub"])

    def _key(self, keys: jwt.PyJWKClient, kid: str) -> jwt.PyJWK:
        """The issuer's key ``kid``. One its keys lack (kept five minutes) has them read again,
        at most once every :data:`COOLDOWN_SECONDS` whatever keys tokens name, so tokens naming
        made-up keys cannot make the service ask the API server once each: still lacking, the
        token is refused (``InvalidTokenError``); not read again yet, :class:`UnreadKey`."""
        key = keys.match_kid(keys.get_signing_keys(), kid)
        if key is not None:
            return key
        with self._lock:
            now = time.monotonic()
            if self._reread is not None and now - self._reread < COOLDOWN_SECONDS:
                raise UnreadKey(f"the token names a key ({kid!r:.60}) the issuer's keys lacked when read "
                                f"{now - self._reread:.0f} s ago; they are read again for it after {COOLDOWN_SECONDS} s")
            self._reread = now
        key = keys.match_kid(keys.get_signing_keys(refresh=True), kid)
        if key is None:
            raise jwt.InvalidTokenError(f"the token names a key ({kid!r:.60}) the issuer does not publish")
        return key
