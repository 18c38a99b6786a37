"""Helpers for the push-endpoint tests: real HTTP servers and real RS256 ID tokens.

- ``AppServer`` serves ``create_app(runtime)`` with uvicorn on a thread (lifespan
  included, so the runtime's services start and stop with it).
- ``TokenIssuer`` plays Google's token service: a locally generated RSA key and a
  self-signed X.509 certificate; ``token(...)`` signs a real RS256 JWT with the
  claims Pub/Sub, Eventarc and Cloud Scheduler put in theirs.
- ``CertServer`` publishes issuers' certificates as Google's
  ``oauth2/v1/certs`` does ({key id: PEM}, with Cache-Control), so the service
  fetches and verifies exactly as it would in production (OIDC_CERTS_URL).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from orchestrator.api.app import create_app
from orchestrator.runtime import Runtime

SERVICE_ACCOUNT = "laxai-push@laxai-test.iam.gserviceaccount.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """The service's app for ``runtime`` on a free port, over real HTTP."""

    def __init__(self, runtime: Runtime, with_extensions: bool = False):
        self.runtime = runtime
        self.port = free_port()
        self.app = create_app(runtime, with_extensions=with_extensions)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-app", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


class TokenIssuer:
    """Signs ID tokens as Google would, with its own key and key id."""

    def __init__(self, kid: str | None = None):
        self.kid = kid or uuid.uuid4().hex
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-oauth2-certs")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=2)).sign(key, hashes.SHA256()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.signer = crypt.RSASigner.from_string(self.private_pem, key_id=self.kid)

    def claims(self, audience: str, email: str = SERVICE_ACCOUNT, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890", "sub": "1234567890",
                  "email": email, "email_verified": True, "iat": now, "exp": now + 3600}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, audience: str, email: str = SERVICE_ACCOUNT, kid: str | None = None, **overrides: Any) -> str:
        """A signed JWT; ``kid`` names another key id in the header (the signature stays this key's)."""
        signer = self.signer if kid is None else crypt.RSASigner.from_string(self.private_pem, key_id=kid)
        return jwt.encode(signer, self.claims(audience, email, **overrides)).decode()


class CertServer:
    """Serves {key id: certificate PEM} like https://www.googleapis.com/oauth2/v1/certs; counts fetches."""

    def __init__(self, *issuers: TokenIssuer, max_age: int = 3600):
        self.certs = {issuer.kid: issuer.cert_pem for issuer in issuers}
        self.max_age = max_age
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner.fetches += 1
                body = json.dumps(owner.certs).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Cache-Control", f"public, max-age={owner.max_age}, must-revalidate, no-transform")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="cert-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/oauth2/v1/certs"

    def __enter__(self) -> CertServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
