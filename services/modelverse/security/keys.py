"""API keys with roles, kept hashed in a JSON keys file.

A key reads ``mv_<key id>_<secret>``. The key id is public (it names the key in ``keys list`` and
in logs); the secret is 32 random bytes. The file keeps, per key, its id, role, a random salt and
SHA-256(salt + key). A plain salted SHA-256 is enough here: the secret has 256 bits of entropy, so
a stolen keys file cannot be brute-forced, and a slow hash (scrypt) would cost milliseconds on
every RPC. Verification looks the record up by key id and compares digests with
``hmac.compare_digest`` (constant time).

The file is written atomically with mode 0600, and re-read by ``KeyRing`` when it changes, so
rotating a key (create the new one, hand it out, revoke the old one) needs no restart.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# The environment variable a server reads its keys file path from (e.g. a mounted Kubernetes
# secret), declared with the setting it gives (settings.common.AuthSettings.api_keys).
from modelverse.errors import InvalidInputError
from modelverse.settings.common import KEYS_FILE_ENV  # noqa: F401  (imported from here too)

KEY_PREFIX = "mv"
FORMAT_VERSION = 1
MAX_KEY_CHARS = 200  # longer "keys" are refused before any hashing


class Role(str, enum.Enum):
    READ = "read"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.READ


class KeyFileError(InvalidInputError):
    """The keys file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    role: Role
    salt: str  # hex
    digest: str  # hex SHA-256(salt bytes + key utf-8)
    created: str  # ISO 8601, UTC
    label: str = ""

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(bytes.fromhex(self.digest), _digest(bytes.fromhex(self.salt), key))

    def to_json(self) -> dict:
        return {**asdict(self), "role": self.role.value}


def _digest(salt: bytes, key: str) -> bytes:
    return hashlib.sha256(salt + key.encode("utf-8")).digest()


def split_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    if len(key) > MAX_KEY_CHARS:
        return None
    parts = key.split("_", 2)  # the secret (URL-safe base64) may itself hold "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


class KeysFile:
    """The keys file itself: load, add, revoke, save. Not thread-safe; one writer at a time."""

    def __init__(self, path: Path, records: list[KeyRecord]) -> None:
        self.path = path
        self.records = records

    @classmethod
    def load(cls, path: Path | str, *, missing_ok: bool = False) -> KeysFile:
        path = Path(path)
        if not path.exists():
            if missing_ok:
                return cls(path, [])
            raise KeyFileError(f"{path}: no keys file")
        try:
            data = json.loads(path.read_text())
            if data.get("version") != FORMAT_VERSION:
                raise KeyFileError(f"{path}: keys file version {data.get('version')!r}, expected {FORMAT_VERSION}")
            records = [
                KeyRecord(r["key_id"], Role(r["role"]), r["salt"], r["digest"], r["created"], r.get("label", ""))
                for r in data["keys"]
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, KeyFileError):
                raise
            raise KeyFileError(f"{path}: not a valid keys file ({type(exc).__name__})") from exc
        return cls(path, records)

    def create(self, role: Role, label: str = "") -> str:
        """Add a new key of ``role``; returns the key itself (shown once, never stored)."""
        key_id = secrets.token_hex(6)
        while any(r.key_id == key_id for r in self.records):
            key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_bytes(16)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.records.append(KeyRecord(key_id, role, salt.hex(), _digest(salt, key).hex(), created, label))
        return key

    def revoke(self, key_id: str) -> bool:
        kept = [r for r in self.records if r.key_id != key_id]
        removed = len(kept) != len(self.records)
        self.records = kept
        return removed

    def save(self) -> None:
        """Atomic write, mode 0600 from the start (the digests are not secrets, but the file says
        which keys exist and who may use them)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"version": FORMAT_VERSION, "keys": [r.to_json() for r in self.records]}, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)


def write_secret(path: Path, text: str) -> None:
    """A file only its owner can read (a key handed to a client)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


class KeyRing:
    """The keys a server accepts, re-read from its file when the file changes (at most once per
    ``recheck_s``), so revocation takes effect without a restart."""

    def __init__(self, path: Path | str, recheck_s: float = 1.0) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._by_id: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._reload()
        if not self._by_id:
            raise KeyFileError(f"{self.path}: the keys file holds no keys (create one with `modelverse keys create`)")

    def _reload(self) -> None:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._stamp:
            records = KeysFile.load(self.path).records
            self._by_id = {r.key_id: r for r in records}
            self._stamp = stamp

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.recheck_s:
            return
        with self._lock:
            if now - self._checked < self.recheck_s:
                return
            self._checked = now
            try:
                self._reload()
            except (OSError, KeyFileError):
                # A half-replaced or briefly missing file keeps the last good keys: failing
                # every call would be worse than serving one more second on the old set.
                pass

    def role_of(self, key: str) -> tuple[str, Role] | None:
        """(key id, role) of a valid key, else None."""
        self._refresh()
        key_id = split_key(key)
        record = self._by_id.get(key_id) if key_id else None
        if record is None or not record.matches(key):
            return None
        return record.key_id, record.role
