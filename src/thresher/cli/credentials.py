"""Where `thresher login` keeps a controller's URL and token: $XDG_CONFIG_HOME/thresher/
credentials.json (else ~/.config/thresher/credentials.json), mode 0600 in a 0700 folder.

Client commands use it when neither --token nor THRESHER_TOKEN gives a token (and its URL
when neither --url nor THRESHER_URL names one)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Login:
    url: str
    token: str
    ca_file: str | None = None


def path(environ: "os._Environ[str] | dict[str, str] | None" = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "thresher" / "credentials.json"


def load() -> Login | None:
    """The stored login, or None (none stored, or unreadable)."""
    try:
        data = json.loads(path().read_text())
        return Login(str(data["url"]), str(data["token"]), data.get("ca_file"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(login: Login) -> Path:
    """Store `login` readable by this user only; the file's path."""
    where = path()
    where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(where.parent, 0o700)
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": login.url, "token": login.token, "ca_file": login.ca_file}, fh)
        fh.write("\n")
    os.chmod(where, 0o600)
    return where


def forget() -> bool:
    try:
        path().unlink()
    except FileNotFoundError:
        return False
    return True
