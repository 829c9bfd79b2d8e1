"""Secrets the controller must read back (SigV4 access-key secrets), sealed at rest with a
key that is not in the database: a Fernet key file, by default `<data-dir>/secret.key`
(mode 0600, created on first start). Controllers sharing one PostgreSQL must share the file."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

#: Sealed values start so (Fernet's version byte, base64): anything else is an unsealed
#: secret from before sealing existed.
SEALED_PREFIX = "gAAAAA"


class SecretBox:
    """Seal and open short secrets with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """The key in `path`, created (0600) when there is none."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path.read_bytes().strip())
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key() + b"\n")
        return cls(path.read_bytes().strip())

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret; a value stored before sealing existed is returned as it is."""
        if not sealed.startswith(SEALED_PREFIX):
            return sealed
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("an access-key secret cannot be opened with this key file") from None
