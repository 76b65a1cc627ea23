"""Connector credentials, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from PANDORA_SECRET_KEY (a Fernet key, or any passphrase, which is stretched with SHA-256).
With the embedded default database and no key set, one is generated into `$PANDORA_HOME/secret.key`
(mode 0600) on first use. With an external DATABASE_URL the key must be set explicitly: a generated key on one
machine would make the credentials unreadable from every other machine sharing that database.
Decrypted credentials are plain dicts that must never be logged or echoed back to a user.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from core.errors import ConfigError
from core.settings import Settings


def _fernet_key(secret: str) -> bytes:
    raw = secret.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def _key_file(home: Path) -> bytes:
    path = home / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    home.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


class Vault:
    """Encrypts and decrypts credential dicts."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Vault":
        if settings.secret_key:
            return cls(_fernet_key(settings.secret_key))
        if settings.embedded:
            return cls(_key_file(settings.pandora_home))
        raise ConfigError(
            "PANDORA_SECRET_KEY is not set: it is required with an external DATABASE_URL to encrypt credentials",
            variable="PANDORA_SECRET_KEY",
        )

    def encrypt(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials, sort_keys=True).encode())

    def decrypt(self, blob: bytes | memoryview | None) -> dict[str, Any]:
        if blob is None:
            return {}
        try:
            return json.loads(self._fernet.decrypt(bytes(blob)))
        except InvalidToken:
            raise ConfigError(
                "stored credentials cannot be decrypted with this PANDORA_SECRET_KEY (was the key changed?)",
                variable="PANDORA_SECRET_KEY",
            ) from None
