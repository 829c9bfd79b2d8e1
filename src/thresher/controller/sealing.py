"""Secrets the controller must read back (SigV4 access-key secrets), sealed at rest with a
key that is not in the database: a Fernet key file, by default `<data-dir>/secret.key`
(mode 0600, created on first start). Controllers sharing one PostgreSQL must share the file."""

from __future__ import annotations

import os
import secrets
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
        """The key in `path`, created (0600) when there is none. A new key is written to a
        file of its own and linked into place, so controllers started together on one data
        directory never read a key file half written: the first link wins, the others read
        its key."""
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key() + b"\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another controller's key is in place: read it
            finally:
                tmp.unlink()
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
