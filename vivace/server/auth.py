"""Authentication and authorization.

* :class:`OpenAuth` - no credentials. By default only clients on the loopback interface are
  let in (``vivace serve`` binds 127.0.0.1); ``OpenAuth(local_only=False)`` opens it to all.
* :class:`APIKeyAuth` - ``Authorization: Bearer <key>`` (``VIVACE_API_KEY``). Full access.
* :class:`JWTAuth` - HS256 (shared secret) or RS256 (public key) tokens. The user id comes
  from ``sub`` and the scopes from ``scope`` (space separated) or ``scopes`` (a list).
* :class:`MultiAuth` - the first of several that accepts the credentials.

Scopes guard route families: ``runs`` (agents, runs, OpenAI-compatible routes), ``sessions``
(sessions and memory) and ``admin`` (everything, and other users' data). A principal bound
to a user (a JWT's ``sub``) only ever sees that user's sessions, memory and runs.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import HTTPError

__all__ = [
    "SCOPES",
    "APIKeyAuth",
    "Auth",
    "JWTAuth",
    "MultiAuth",
    "OpenAuth",
    "Principal",
    "resolve_auth",
]

SCOPES = ("runs", "sessions", "admin")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling: a user id (when the credentials name one) and the granted scopes."""

    user_id: str | None
    scopes: frozenset[str]
    method: str = "open"

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def user_for(self, requested: str | None, default_self: bool = True) -> str | None:
        """The user id a request acts as: the principal's own, unless it is an admin/key.

        With ``default_self=False`` an admin asking for no user gets ``None`` (all users).
        """
        if self.user_id is None or self.admin:
            if requested is not None or not default_self:
                return requested
            return self.user_id
        if requested is not None and requested != self.user_id:
            raise HTTPError(
                403, "forbidden_user", "the credentials do not allow acting as this user"
            )
        return self.user_id

    def can_see(self, owner: str | None) -> bool:
        """May this principal read a record owned by ``owner``?"""
        return self.user_id is None or self.admin or owner == self.user_id


ALL = frozenset(SCOPES)


class Auth(Protocol):
    """Turns a request's headers and client into a :class:`Principal` (or raises 401)."""

    def authenticate(self, headers: Any, client_host: str | None) -> Principal: ...


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


REALM = "vivace"


def challenge(error: str | None = None, description: str | None = None, **params: str) -> str:
    """A ``WWW-Authenticate`` Bearer challenge (RFC 6750 section 3): ``realm``, then
    ``error``/``error_description`` when credentials were sent and refused, then ``params``
    (``scope``, ``resource_metadata``...)."""
    items = [("realm", REALM)]
    if error is not None:
        items.append(("error", error))
        if description:
            items.append(("error_description", description))
    items += params.items()
    return "Bearer " + ", ".join(f'{k}="{_quoted(v)}"' for k, v in items)


def with_params(header: str, **params: str) -> str:
    """A challenge with more auth-params appended (``resource_metadata="..."``)."""
    return header + "".join(f', {k}="{_quoted(v)}"' for k, v in params.items())


def _quoted(value: str) -> str:
    """``value`` as a quoted-string body: printable ASCII, ``\\`` and ``"`` escaped."""
    kept = "".join(c for c in value if " " <= c <= "~")
    return kept.replace("\\", "\\\\").replace('"', '\\"')


def _unauthorized(
    message: str = "missing or invalid credentials", *, refused: bool = False
) -> HTTPError:
    """401 with a Bearer challenge; ``refused``: credentials were sent and are not valid
    (``error="invalid_token"``), else none were sent (no error code, RFC 6750 section 3.1)."""
    header = challenge("invalid_token", message) if refused else challenge()
    return HTTPError(401, "unauthorized", message, headers={"WWW-Authenticate": header})


class OpenAuth:
    """No credentials; loopback clients only unless ``local_only=False``."""

    def __init__(self, local_only: bool = True) -> None:
        self.local_only = local_only

    def authenticate(self, headers: Any, client_host: str | None) -> Principal:
        if self.local_only and client_host is not None and client_host not in _LOOPBACK:
            raise _unauthorized("this server accepts unauthenticated requests from localhost only")
        return Principal(None, ALL, "open")


class APIKeyAuth:
    """A bearer API key (or several, for rotation). Grants every scope."""

    def __init__(self, keys: str | Sequence[str]) -> None:
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys or not all(keys):
            raise ValueError("APIKeyAuth needs at least one non-empty key")
        self._keys = [k.encode() for k in keys]

    def authenticate(self, headers: Any, client_host: str | None) -> Principal:
        token = _bearer(headers) or headers.get("x-api-key")
        if token:
            given = token.encode()
            ok = False
            for key in self._keys:
                ok |= hmac.compare_digest(given, key)
            if ok:
                return Principal(None, ALL, "api_key")
            raise _unauthorized("invalid API key", refused=True)
        raise _unauthorized()


class JWTAuth:
    """JSON Web Tokens signed with HS256 (``secret``) or RS256 (``public_key``).

    Args:
        secret: Shared secret for HS256.
        public_key: PEM public key for RS256.
        algorithms: Accepted algorithms (default: HS256 with a secret, RS256 with a key).
        audience / issuer: Checked when given.
        user_claim: Claim holding the user id (``sub``).
        leeway: Seconds of clock skew allowed on ``exp``/``nbf``.
    """

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        public_key: str | bytes | None = None,
        algorithms: Sequence[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        user_claim: str = "sub",
        leeway: float = 0,
    ) -> None:
        if (secret is None) == (public_key is None):
            raise ValueError("JWTAuth needs exactly one of secret (HS256) or public_key (RS256)")
        self.key = secret if secret is not None else public_key
        self.algorithms = list(algorithms or (["HS256"] if secret is not None else ["RS256"]))
        self.audience = audience
        self.issuer = issuer
        self.user_claim = user_claim
        self.leeway = leeway

    def authenticate(self, headers: Any, client_host: str | None) -> Principal:
        import jwt

        token = _bearer(headers)
        if token is None:
            raise _unauthorized()
        try:
            claims = jwt.decode(
                token,
                self.key,  # type: ignore[arg-type]
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired", refused=True) from None
        except jwt.PyJWTError:
            raise _unauthorized("invalid token", refused=True) from None
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user:
            raise _unauthorized(f"the token has no {self.user_claim!r} claim", refused=True)
        raw = claims.get("scope", claims.get("scopes", ""))
        scopes = raw.split() if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
        return Principal(user, frozenset(s for s in scopes if isinstance(s, str)), "jwt")


class MultiAuth:
    """Accept the first of ``auths`` that authenticates the request."""

    def __init__(self, *auths: Any) -> None:
        if not auths:
            raise ValueError("MultiAuth needs at least one Auth")
        self.auths = auths

    def authenticate(self, headers: Any, client_host: str | None) -> Principal:
        error: HTTPError | None = None
        for auth in self.auths:
            try:
                return auth.authenticate(headers, client_host)
            except HTTPError as exc:
                error = error or exc
        assert error is not None
        raise error


def resolve_auth(auth: Any) -> Any:
    """``auth=None``: from the environment (``VIVACE_API_KEY``, ``VIVACE_JWT_SECRET``,
    ``VIVACE_JWT_PUBLIC_KEY``); with none set, :class:`OpenAuth` for localhost.
    ``False``/``"none"``: open to everyone. A list: :class:`MultiAuth`."""
    if auth is False or auth == "none":
        return OpenAuth(local_only=False)
    if isinstance(auth, list | tuple):
        return MultiAuth(*auth)
    if auth is not None:
        return auth
    found: list[Any] = []
    key = os.environ.get("VIVACE_API_KEY")
    if key:
        found.append(APIKeyAuth([k for k in key.split(",") if k]))
    secret = os.environ.get("VIVACE_JWT_SECRET")
    if secret:
        found.append(JWTAuth(secret))
    public = os.environ.get("VIVACE_JWT_PUBLIC_KEY")
    if public:
        if os.path.exists(public):
            with open(public, "rb") as fh:
                public = fh.read().decode()
        found.append(JWTAuth(public_key=public))
    if not found:
        return OpenAuth()
    return found[0] if len(found) == 1 else MultiAuth(*found)


def check(auth: Any, request: Any, scope: str | None) -> Principal:
    """Authenticate ``request`` and require ``scope`` (403 when missing)."""
    client = request.client
    principal: Principal = auth.authenticate(request.headers, client.host if client else None)
    if scope is not None and not principal.allows(scope):
        raise HTTPError(
            403,
            "insufficient_scope",
            f"the credentials lack the {scope!r} scope",
            headers={
                "WWW-Authenticate": challenge(
                    "insufficient_scope", f"needs the {scope!r} scope", scope=scope
                )
            },
        )
    return principal


def oauth_issuer(auth: Any) -> str | None:
    """The token issuer ``auth`` checks (a :class:`JWTAuth` with ``issuer``), or None: the
    authorization server that protected-resource metadata (RFC 9728) points clients to."""
    if isinstance(auth, MultiAuth):
        for a in auth.auths:
            found = oauth_issuer(a)
            if found:
                return found
        return None
    issuer = getattr(auth, "issuer", None) if isinstance(auth, JWTAuth) else None
    return issuer if isinstance(issuer, str) and issuer else None
