"""Request signing of each venue, exactly as its docs describe it: pure functions, no I/O.

Secrets come in as ``config_secrets.Secret`` and are revealed only at the HMAC or key-load
call, so they never reach a repr, a log line or an exception: every ``SigningError`` names
what is wrong with an input, never its value, and is raised ``from None`` so no chained
exception can carry the value either. Clocks and nonces are arguments, so every function
returns the same bytes for the same inputs (ECDSA aside, which is randomised by design).

Sources (each function cites its own section):

* Binance: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security
  and .../websocket-api/request-security
* OKX v5: https://www.okx.com/docs-v5/en/#overview-rest-authentication-making-requests
* Bybit v5: https://bybit-exchange.github.io/docs/v5/guide#create-a-request
* Kraken: https://docs.kraken.com/api/docs/guides/spot-rest-auth
* Coinbase CDP: https://docs.cdp.coinbase.com/coinbase-app/authentication-authorization/api-key-authentication
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NoReturn

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from arbengine.config_secrets import Secret

__all__ = [
    "CDP_JWT_LIFETIME_S",
    "CdpPrivateKey",
    "SigningError",
    "binance_rest_payload",
    "binance_rest_signature",
    "binance_ws_payload",
    "binance_ws_signature",
    "binance_ws_signed_params",
    "bybit_headers",
    "bybit_prehash",
    "bybit_signature",
    "bybit_ws_auth_args",
    "cdp_jwt",
    "cdp_rest_uri",
    "cdp_verify_jwt",
    "kraken_api_sign",
    "kraken_headers",
    "load_cdp_private_key",
    "okx_headers",
    "okx_prehash",
    "okx_signature",
    "okx_timestamp",
    "okx_ws_login_args",
]

# Coinbase: "JWTs expire after 2 minutes".
CDP_JWT_LIFETIME_S = 120

ParamValue = str | int | bool


class SigningError(ValueError):
    """An input that can't be signed as the venue documents; one line, never a secret."""


def _hmac(key: bytes, msg: bytes, digest: str) -> bytes:
    return hmac.new(key, msg, digest).digest()


def _secret_bytes(secret: Secret) -> bytes:
    return secret.reveal().encode("utf-8")


def _method(method: str) -> str:
    upper = method.upper()
    if upper not in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        raise SigningError(f"HTTP method {method!r} is not one a venue signs")
    return upper


def _param_text(name: str, value: ParamValue) -> str:
    # bool before int: bool is an int subclass and JSON spells it true/false.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    # Floats and Decimals have more than one text form; the signed text must be the very
    # text sent, so the caller formats them once and passes the string.
    raise SigningError(
        f"parameter {name!r} is a {type(value).__name__}; pass it as str or int text"
    )


# --- Binance ----------------------------------------------------------------------------


def binance_rest_payload(query: str = "", body: str = "") -> str:
    """The REST signature payload: the query string followed by the form body with no
    separator (rest-api.md, "SIGNED Endpoint Examples for POST /api/v3/order"). Both must
    already be percent-encoded exactly as sent."""
    payload = query + body
    if not payload.isascii():
        raise SigningError("binance REST payload must be percent-encoded (non-ASCII found)")
    return payload


def binance_rest_signature(secret: Secret, query: str = "", body: str = "") -> str:
    """HMAC-SHA256 hex of ``query + body``, sent as the ``signature`` parameter."""
    payload = binance_rest_payload(query, body).encode("ascii")
    return _hmac(_secret_bytes(secret), payload, "sha256").hex()


def binance_ws_payload(params: Mapping[str, ParamValue]) -> str:
    """The WebSocket API payload: every param but ``signature`` (``apiKey`` included),
    sorted by name, joined as ``k=v&...`` and NOT percent-encoded (web-socket-api.md,
    "SIGNED request example (HMAC)")."""
    return "&".join(
        f"{name}={_param_text(name, params[name])}"
        for name in sorted(params)
        if name != "signature"
    )


def binance_ws_signature(secret: Secret, params: Mapping[str, ParamValue]) -> str:
    """HMAC-SHA256 hex of the UTF-8 bytes of ``binance_ws_payload(params)``."""
    if "apiKey" not in params:
        raise SigningError("binance WS API params need apiKey: it is part of what is signed")
    payload = binance_ws_payload(params).encode("utf-8")
    return _hmac(_secret_bytes(secret), payload, "sha256").hex()


def binance_ws_signed_params(
    secret: Secret, params: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """``params`` with their ``signature`` set, ready to go in the request's ``params``."""
    signed = {k: v for k, v in params.items() if k != "signature"}
    signed["signature"] = binance_ws_signature(secret, signed)
    return signed


# --- OKX v5 -----------------------------------------------------------------------------


def okx_timestamp(epoch_ms: int) -> str:
    """``OK-ACCESS-TIMESTAMP``: ISO 8601 UTC with milliseconds, e.g.
    ``2020-12-08T09:08:57.715Z``."""
    if epoch_ms < 0:
        raise SigningError("okx timestamp must be a non-negative epoch in milliseconds")
    seconds, millis = divmod(epoch_ms, 1000)
    whole = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{millis:03d}Z"


def okx_prehash(timestamp: str, method: str, request_path: str, body: str = "") -> str:
    """``timestamp + METHOD + requestPath + body``; requestPath carries the query string
    (GET) and body is the exact JSON text sent (empty for GET)."""
    if not request_path.startswith("/"):
        raise SigningError(f"okx requestPath {request_path!r} must start with '/'")
    return timestamp + _method(method) + request_path + body


def okx_signature(
    secret: Secret, timestamp: str, method: str, request_path: str, body: str = ""
) -> str:
    """``OK-ACCESS-SIGN`` = Base64(HMAC-SHA256(secret, prehash))."""
    prehash = okx_prehash(timestamp, method, request_path, body).encode("utf-8")
    return base64.b64encode(_hmac(_secret_bytes(secret), prehash, "sha256")).decode("ascii")


def okx_headers(
    api_key: str,
    secret: Secret,
    passphrase: Secret,
    epoch_ms: int,
    method: str,
    request_path: str,
    body: str = "",
    *,
    demo: bool = False,
) -> dict[str, str]:
    """The four OK-ACCESS-* headers (plus ``x-simulated-trading: 1`` for demo trading).
    The passphrase travels in clear text, as OKX requires."""
    timestamp = okx_timestamp(epoch_ms)
    headers = {
        "OK-ACCESS-KEY": api_key,
        "OK-ACCESS-SIGN": okx_signature(secret, timestamp, method, request_path, body),
        "OK-ACCESS-TIMESTAMP": timestamp,
        "OK-ACCESS-PASSPHRASE": passphrase.reveal(),
        "Content-Type": "application/json",
    }
    if demo:
        headers["x-simulated-trading"] = "1"
    return headers


def okx_ws_login_args(
    api_key: str, secret: Secret, passphrase: Secret, epoch_s: int
) -> dict[str, str]:
    """One ``args`` entry of the private WebSocket ``login`` op: the sign is the REST
    scheme over ``timestamp + "GET" + "/users/self/verify"`` with a Unix-seconds timestamp
    (OKX v5 "WebSocket > Login")."""
    timestamp = str(epoch_s)
    return {
        "apiKey": api_key,
        "passphrase": passphrase.reveal(),
        "timestamp": timestamp,
        "sign": okx_signature(secret, timestamp, "GET", "/users/self/verify"),
    }


# --- Bybit v5 ---------------------------------------------------------------------------


def bybit_prehash(timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str) -> str:
    """``timestamp + api_key + recv_window + payload``; payload is the query string (GET)
    or the exact JSON body text (POST), spaces and all."""
    if recv_window_ms <= 0:
        raise SigningError("bybit recv_window must be a positive number of milliseconds")
    return f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"


def bybit_signature(
    secret: Secret, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str
) -> str:
    """``X-BAPI-SIGN``: HMAC-SHA256 as lowercase hex."""
    prehash = bybit_prehash(timestamp_ms, api_key, recv_window_ms, payload).encode("utf-8")
    return _hmac(_secret_bytes(secret), prehash, "sha256").hex()


def bybit_headers(
    api_key: str, secret: Secret, timestamp_ms: int, recv_window_ms: int, payload: str
) -> dict[str, str]:
    """The four X-BAPI-* headers of a signed v5 request."""
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-SIGN": bybit_signature(secret, timestamp_ms, api_key, recv_window_ms, payload),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
    }


def bybit_ws_auth_args(api_key: str, secret: Secret, expires_ms: int) -> list[str | int]:
    """``args`` of the private WebSocket ``auth`` op: HMAC-SHA256 hex of
    ``"GET/realtime" + expires`` (Bybit v5 "WebSocket Connect > Authentication")."""
    msg = f"GET/realtime{expires_ms}".encode("ascii")
    return [api_key, expires_ms, _hmac(_secret_bytes(secret), msg, "sha256").hex()]


# --- Kraken -----------------------------------------------------------------------------


def kraken_api_sign(secret: Secret, uri_path: str, nonce: int | str, post_data: str) -> str:
    """``API-Sign`` = base64(HMAC-SHA512(base64decode(secret), uri_path +
    SHA256(nonce + post_data))). ``uri_path`` starts at ``/0/private``; ``post_data`` is
    the form-encoded body exactly as sent, nonce included."""
    if not uri_path.startswith("/"):
        raise SigningError(f"kraken URI path {uri_path!r} must start with '/'")
    try:
        key = base64.b64decode(secret.reveal(), validate=True)
    except (binascii.Error, ValueError):
        raise SigningError("kraken API secret is not valid base64") from None
    inner = hashlib.sha256(f"{nonce}{post_data}".encode()).digest()
    mac = _hmac(key, uri_path.encode("utf-8") + inner, "sha512")
    return base64.b64encode(mac).decode("ascii")


def kraken_headers(
    api_key: str, secret: Secret, uri_path: str, nonce: int | str, post_data: str
) -> dict[str, str]:
    """``API-Key`` and ``API-Sign`` of a private REST call."""
    return {
        "API-Key": api_key,
        "API-Sign": kraken_api_sign(secret, uri_path, nonce, post_data),
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }


# --- Coinbase Advanced Trade (CDP JWT) ----------------------------------------------------

CdpAlgorithm = Literal["ES256", "EdDSA"]


@dataclass(frozen=True, slots=True)
class CdpPrivateKey:
    """A loaded CDP signing key; its repr names the algorithm only."""

    alg: CdpAlgorithm
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = field(repr=False)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a CdpPrivateKey is not picklable")

    def public_key(self) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
        return self.key.public_key()


def load_cdp_private_key(secret: Secret) -> CdpPrivateKey:
    """A CDP API secret: an EC P-256 PEM (``-----BEGIN EC PRIVATE KEY-----``, ES256) or
    the base64 text of an Ed25519 key (64 bytes: seed then public key, or the 32-byte seed
    alone; EdDSA). A PEM pasted with literal ``\\n`` escapes is accepted, as Coinbase's
    key download shows it that way."""
    text = secret.reveal().strip()
    if text.startswith("-----BEGIN"):
        pem = text.replace("\\n", "\n").encode("ascii", errors="replace")
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise SigningError("coinbase API secret: PEM does not hold a readable key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise SigningError("coinbase API secret: PEM key is not EC P-256 (ES256)")
        return CdpPrivateKey("ES256", key)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(
            "coinbase API secret is neither an EC PEM nor base64 Ed25519 key"
        ) from None
    if len(raw) not in (32, 64):
        raise SigningError(
            f"coinbase Ed25519 secret decodes to {len(raw)} bytes; expected 32 or 64"
        )
    ed_key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64:
        derived = ed_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        if not hmac.compare_digest(derived, raw[32:]):
            raise SigningError("coinbase Ed25519 secret: public half does not match the seed")
    return CdpPrivateKey("EdDSA", ed_key)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cdp_rest_uri(method: str, host: str, path: str) -> str:
    """The ``uri`` claim: ``"<METHOD> <host><path>"``, e.g.
    ``"POST api.coinbase.com/api/v3/brokerage/orders"``. The path carries no query
    string: pass it without one."""
    if "://" in host or "/" in host:
        raise SigningError(f"coinbase JWT host {host!r} must be a bare host name")
    if not path.startswith("/") or "?" in path:
        raise SigningError(f"coinbase JWT path {path!r} must start with '/' and have no query")
    return f"{_method(method)} {host}{path}"


def cdp_jwt(
    key_name: str,
    key: CdpPrivateKey,
    *,
    now_s: int,
    nonce: str,
    uri: str | None,
) -> str:
    """A CDP JWT: header {alg, kid=key_name, nonce, typ=JWT}; claims {iss="cdp",
    sub=key_name, nbf=now, exp=now+120, uri}. ``uri=None`` leaves the claim out, as
    WebSocket JWTs must. ``nonce`` is fresh random hex from the caller
    (``secrets.token_hex(16)``)."""
    if not key_name:
        raise SigningError("coinbase API key name is empty")
    if not nonce or any(c not in "0123456789abcdef" for c in nonce):
        raise SigningError("coinbase JWT nonce must be lowercase hex")
    header = {"alg": key.alg, "kid": key_name, "nonce": nonce, "typ": "JWT"}
    claims: dict[str, str | int] = {
        "iss": "cdp",
        "sub": key_name,
        "nbf": now_s,
        "exp": now_s + CDP_JWT_LIFETIME_S,
    }
    if uri is not None:
        claims["uri"] = uri
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
    data = signing_input.encode("ascii")
    if isinstance(key.key, ec.EllipticCurvePrivateKey):
        # JWS ES256 wants the raw r||s pair (RFC 7518 3.4), not the DER cryptography emits.
        r, s = decode_dss_signature(key.key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = key.key.sign(data)
    return f"{signing_input}.{_b64url(signature)}"


def cdp_verify_jwt(
    token: str,
    public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
    *,
    now_s: int,
) -> tuple[dict[str, object], dict[str, object]]:
    """(header, claims) of a CDP JWT whose signature verifies under ``public_key`` and
    whose nbf <= now < exp; SigningError otherwise. What a venue simulator checks."""
    parts = token.split(".")
    if len(parts) != 3:
        raise SigningError("JWT does not have three dot-separated parts")
    try:
        header = orjson.loads(_b64url_decode(parts[0]))
        claims = orjson.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (binascii.Error, ValueError):
        raise SigningError("JWT part is not base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise SigningError("JWT header and claims must be JSON objects")
    data = f"{parts[0]}.{parts[1]}".encode("ascii")
    alg = header.get("alg")
    try:
        if alg == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                raise SigningError("ES256 JWT signature is not 64 bytes")
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        elif alg == "EdDSA" and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            raise SigningError(f"JWT alg {alg!r} does not match the key type")
    except InvalidSignature:
        raise SigningError("JWT signature does not verify") from None
    if claims.get("iss") != "cdp" or claims.get("sub") != header.get("kid"):
        raise SigningError("JWT iss must be 'cdp' and sub must equal the header kid")
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if not isinstance(nbf, int) or not isinstance(exp, int):
        raise SigningError("JWT nbf and exp must be integers")
    if not nbf <= now_s < exp:
        raise SigningError("JWT is outside its nbf..exp window")
    return header, claims
