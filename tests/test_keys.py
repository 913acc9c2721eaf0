"""The keys file and the key ring on real files; the HTTP side of the same access rule and TLS."""

from __future__ import annotations

import http.server
import json
import ssl
import stat
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from modelverse.security.access import Authenticator, Denial, bearer_key, needed_role
from modelverse.security.certs import LocalCA
from modelverse.security.keys import KeyFileError, KeyRing, KeysFile, Role, split_key
from modelverse.security.tls import ServerTLS


def test_created_keys_verify_by_role_and_only_their_hash_is_stored(tmp_path) -> None:
    keys = KeysFile.load(tmp_path / "keys.json", missing_ok=True)
    admin, read = keys.create(Role.ADMIN), keys.create(Role.READ, label="web")
    keys.save()
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    text = (tmp_path / "keys.json").read_text()
    assert admin not in text and read not in text and admin.split("_", 2)[2] not in text
    ring = KeyRing(tmp_path / "keys.json")
    assert ring.role_of(admin) == (split_key(admin), Role.ADMIN)
    assert ring.role_of(read) == (split_key(read), Role.READ)
    for forged in (admin[:-1] + ("A" if admin[-1] != "A" else "B"), f"mv_{split_key(admin)}_short", "", "mv__x",
                   "nonsense", "mv_" + "a" * 500 + "_b"):
        assert ring.role_of(forged) is None, forged


def test_a_revoked_key_is_refused_after_the_ring_rechecks_and_a_corrupt_file_keeps_the_last_good_keys(tmp_path) -> None:
    path = tmp_path / "keys.json"
    keys = KeysFile.load(path, missing_ok=True)
    old, new = keys.create(Role.READ), keys.create(Role.READ)
    keys.save()
    ring = KeyRing(path, recheck_s=0.0)
    assert ring.role_of(old) and ring.role_of(new)
    keys.revoke(split_key(old))
    keys.save()
    assert ring.role_of(old) is None and ring.role_of(new)
    path.write_text("{ half a file")
    assert ring.role_of(new)  # serving on the last good keys
    with pytest.raises(KeyFileError, match="not a valid keys file"):
        KeysFile.load(path)
    path.write_text(json.dumps({"version": 99, "keys": []}))
    with pytest.raises(KeyFileError, match="version 99"):
        KeysFile.load(path)


def test_the_access_rule_without_grpc() -> None:
    assert needed_role("/grpc.health.v1.Health/Check") is None
    assert needed_role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") is None
    assert needed_role("/modelverse.v1.SearchService/Search") is Role.READ
    assert needed_role("/modelverse.v1.AdminService/RemoveModel") is Role.ADMIN
    assert needed_role("/modelverse.v1.SearchService/SomethingNew") is Role.ADMIN  # closed by default
    assert bearer_key("Bearer abc") == "abc" and bearer_key("bearer  abc ") == "abc"
    assert bearer_key("Basic abc") is None and bearer_key("Bearer ") is None and bearer_key(None) is None


def test_an_https_server_applies_the_same_rule_and_tls_settings(tmp_path) -> None:
    """What the web service does: ServerTLS.ssl_context for its port, Authenticator for its header."""
    keys = KeysFile.load(tmp_path / "keys.json", missing_ok=True)
    read = keys.create(Role.READ)
    keys.save()
    authenticator = Authenticator(KeyRing(tmp_path / "keys.json"))
    ca = LocalCA.create()
    ca_file = ca.write_ca(tmp_path / "ca.pem")
    pair = ca.issue(tmp_path, "web", client=False)
    statuses = {Denial.UNAUTHENTICATED: 401, Denial.PERMISSION_DENIED: 403}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            needed = Role.ADMIN if self.path == "/admin" else Role.READ
            decision = authenticator.decide(self.headers.get("Authorization"), needed)
            self.send_response(200 if decision.allowed else statuses[decision.denial])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ServerTLS(pair.cert, pair.key).ssl_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = ssl.create_default_context(cafile=str(ca_file))

    def status(path: str, key: str | None) -> int:
        request = urllib.request.Request(f"https://localhost:{server.server_address[1]}{path}",
                                         headers={"Authorization": f"Bearer {key}"} if key else {})
        try:
            with urllib.request.urlopen(request, context=client, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert status("/search", read) == 200
        assert status("/search", None) == 401
        assert status("/admin", read) == 403
    finally:
        server.shutdown()


def test_server_tls_flags_take_a_prefix_beside_the_client_flags(tmp_path) -> None:
    from modelverse.client import client_tls_from_args
    from modelverse.security.tls import server_tls_from_args
    from modelverse.web.__main__ import parse_args

    # the web page: --tls-ca, --tls-cert, --tls-key towards the gateway; --https-*: its own port
    args = parse_args(["--gateway", "g:1", "--tls-ca", "ca.pem", "--https-cert", "web.pem", "--https-key", "web.key"])
    assert server_tls_from_args(args, prefix="https") == ServerTLS(Path("web.pem"), Path("web.key"))
    assert client_tls_from_args(args).ca == Path("ca.pem")
    with pytest.raises(SystemExit, match="--https-cert and --https-key"):
        server_tls_from_args(parse_args(["--gateway", "g:1", "--https-cert", "web.pem"]), prefix="https")
