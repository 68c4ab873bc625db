"""OpenID Connect, relying-party side, with Authlib (its requests client and its ID-token claims).

Everything that talks to a provider lives here, and nothing here knows Flask's request. TLS is
verified always; OIDC_CA_BUNDLE (a file of PEM certificates) adds a private CA. The client secret,
the code, the tokens and the code verifier are never logged: failures are reported by kind
(ProviderError.reason), never with the provider's response.

Authlib, requests and joserfc are imported when a provider is first talked to, not with the
app: about 9 MiB that a worker serving no SSO sign-in never needs.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session
    from joserfc.jwk import KeySet

DISCOVERY_TTL = 3600  # seconds a discovery document (and its keys) is reused
TIMEOUT = 10  # seconds for any request to a provider
LEEWAY = 60  # seconds of clock skew accepted on exp/iat
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA"]


class ProviderError(Exception):
    """The provider could not be used for this sign-in. `reason` is a short code for the audit
    log and the page (never the provider's own text, which may echo a code or a token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Identity:
    """What a provider said about the person, through the source's claim mapping."""

    subject: str
    email: str = ""
    email_verified: bool = False
    username: str = ""
    name: str = ""
    groups: list[str] = field(default_factory=list)


@dataclass
class Authorization:
    url: str
    state: str
    nonce: str
    code_verifier: str


_cache: dict[str, tuple[float, dict, KeySet | None]] = {}
_lock = threading.Lock()


def _verify() -> str | bool:
    """requests' `verify`: the system's CAs, or the private bundle OIDC_CA_BUNDLE names."""
    return current_app.config.get("OIDC_CA_BUNDLE") or True


def _get(url: str) -> dict:
    import requests

    try:
        response = requests.get(url, timeout=TIMEOUT, verify=_verify(),
                                headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError):
        raise ProviderError("provider_unreachable") from None


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def discover(issuer: str, *, refresh: bool = False) -> dict:
    """The issuer's discovery document, fetched once an hour (per process)."""
    with _lock:
        cached = _cache.get(issuer)
    if cached and not refresh and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    document = _get(discovery_url(issuer))
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise ProviderError("issuer_mismatch")  # OpenID Connect Discovery 1.0, section 4.3
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(key), str):
            raise ProviderError("discovery_incomplete")
    with _lock:
        _cache[issuer] = (time.monotonic(), document, None)
    return document


def _keys(issuer: str, document: dict, *, refresh: bool = False) -> KeySet:
    with _lock:
        cached = _cache.get(issuer)
    if cached and cached[2] is not None and not refresh:
        return cached[2]
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        keys = KeySet.import_key_set(_get(document["jwks_uri"]))
    except (JoseError, ValueError, TypeError):
        raise ProviderError("bad_keys") from None
    with _lock:
        _cache[issuer] = (cached[0] if cached else time.monotonic(), document, keys)
    return keys


def cached_authorization_endpoint(issuer: str) -> str | None:
    """The authorization endpoint, if the discovery document is cached (no request made)."""
    with _lock:
        cached = _cache.get(issuer)
    return cached[1].get("authorization_endpoint") if cached else None


def forget(issuer: str) -> None:
    """Drop the cached discovery document (the admin changed the source)."""
    with _lock:
        _cache.pop(issuer, None)


def _client(source, secret: str, redirect_uri: str, **kwargs) -> OAuth2Session:
    from authlib.integrations.requests_client import OAuth2Session

    client = OAuth2Session(source.client_id, secret, scope=source.scopes,
                           redirect_uri=redirect_uri, code_challenge_method="S256", **kwargs)
    client.verify = _verify()
    return client


def authorization(source, secret: str, redirect_uri: str) -> Authorization:
    """Where to send the browser: code flow with PKCE (S256), a fresh state and nonce."""
    from authlib.common.security import generate_token

    document = discover(source.issuer)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = generate_token(64)
    client = _client(source, secret, redirect_uri)
    url, _ = client.create_authorization_url(
        document["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier)
    return Authorization(url=url, state=state, nonce=nonce, code_verifier=verifier)


def complete(source, secret: str, redirect_uri: str, *, code: str, nonce: str,
             code_verifier: str) -> Identity:
    """Exchange the code, check the ID token (signature, iss, aud, exp, nonce, at_hash), read
    userinfo when the source says so, and map the claims. ProviderError on any failure."""
    import requests

    document = discover(source.issuer)
    client = _client(source, secret, redirect_uri)
    auth_method = "client_secret_post" if "client_secret_basic" not in document.get(
        "token_endpoint_auth_methods_supported", ["client_secret_basic"]) else \
        "client_secret_basic"
    client.token_endpoint_auth_method = auth_method
    try:
        token = client.fetch_token(document["token_endpoint"], code=code,
                                   code_verifier=code_verifier, timeout=TIMEOUT)
    except requests.RequestException:
        raise ProviderError("provider_unreachable") from None
    except Exception:  # noqa: BLE001 - Authlib's OAuthError and friends: the code was refused
        raise ProviderError("code_refused") from None
    id_token = token.get("id_token")
    if not id_token:
        raise ProviderError("no_id_token")
    claims = _checked_id_token(source, document, id_token, nonce=nonce,
                               access_token=token.get("access_token"))
    if source.use_userinfo and document.get("userinfo_endpoint") and token.get("access_token"):
        try:
            response = client.get(document["userinfo_endpoint"], timeout=TIMEOUT)
            response.raise_for_status()
            info = response.json()
        except (requests.RequestException, ValueError):
            raise ProviderError("userinfo_failed") from None
        if info.get("sub") != claims["sub"]:  # OpenID Connect Core 1.0, section 5.3.2
            raise ProviderError("userinfo_subject_mismatch")
        claims = {**claims, **info}
    return map_claims(source, claims)


def _checked_id_token(source, document, id_token: str, *, nonce: str, access_token) -> dict:
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.errors import JoseError

    for refresh in (False, True):  # a key the cache does not know yet: fetch the keys again
        keys = _keys(source.issuer, document, refresh=refresh)
        try:
            decoded = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            break
        except (JoseError, ValueError):
            if refresh:
                raise ProviderError("id_token_signature") from None
    claims = CodeIDToken(
        decoded.claims, decoded.header,
        options={"iss": {"essential": True, "values": [document["issuer"]]},
                 "aud": {"essential": True, "values": [source.client_id]}},
        params={"nonce": nonce, "client_id": source.client_id, "access_token": access_token},
    )
    try:
        claims.validate(leeway=LEEWAY)
    except Exception:  # noqa: BLE001 - Authlib's JoseError subclasses: iss/aud/exp/nonce/at_hash
        raise ProviderError("id_token_invalid") from None
    if not claims.get("nonce"):
        raise ProviderError("id_token_invalid")  # we always send one; it must come back
    return dict(claims)


def map_claims(source, claims: dict) -> Identity:
    """The source's claim mapping applied to what the provider said."""
    def text(name: str) -> str:
        value = claims.get(name) if name else None
        return value.strip() if isinstance(value, str) else ""

    groups = claims.get(source.claim_groups) if source.claim_groups else None
    verified = claims.get("email_verified")
    return Identity(
        subject=str(claims["sub"]),
        email=text(source.claim_email),
        # Only a real true counts (some providers send the string "true").
        email_verified=verified is True or (isinstance(verified, str) and verified == "true"),
        username=text(source.claim_username),
        name=text(source.claim_name),
        groups=[g for g in groups if isinstance(g, str)] if isinstance(groups, list) else [],
    )
