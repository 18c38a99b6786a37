"""Fixtures for the gcp tests: the emulators (tests/gcp_fixtures.py), a token issuer and its cert server."""

from __future__ import annotations

import pytest

from tests.gcp.support import CertServer, TokenIssuer
from tests.gcp_fixtures import (  # noqa: F401 - fixtures, used by name
    GCP_PROJECT,
    clean_firestore,
    firestore_client,
    firestore_emulator,
    pubsub_emulator,
    pubsub_names,
)


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    """Signs tokens the service accepts (its certificate is served by ``cert_server``)."""
    return TokenIssuer()


@pytest.fixture(scope="session")
def stranger() -> TokenIssuer:
    """Signs tokens with a key the service never sees."""
    return TokenIssuer()


@pytest.fixture
def cert_server(issuer):
    with CertServer(issuer) as server:
        yield server
