"""``shareflow-api``: start-up validation, and the API really served by gunicorn
(workers build the app after the fork, tokens issued later work at once)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from shareflow.api import server
from shareflow.auth.tokens import TokenFile
from shareflow.config import parse
from shareflow.db.engine import Database
from shareflow.db.migrate import upgrade
from shareflow.system.ports import free_port
from tests.fixtures.coordination import chroot


def test_bad_configuration_exits_2_with_a_clear_message(tmp_path, capsys):
    path = tmp_path / "shareflow.toml"
    path.write_text("[api]\nbind = 'nowhere'\n")
    with pytest.raises(SystemExit) as exited:
        server.main(["--config", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("shareflow-api: ") and "api.bind" in err and str(path) in err
    with pytest.raises(SystemExit) as exited:
        server.main(["--config", str(tmp_path / "missing.toml")])
    assert exited.value.code == 2


def test_gunicorn_options_follow_the_configuration(tmp_path):
    config = parse({"api": {"bind": "[::1]:9999", "workers": 3}}, tmp_path / "x.toml")
    options = server.gunicorn_options(config)
    assert options["bind"] == ["[::1]:9999"] and options["workers"] == 3
    assert options["accesslog"] == "-" and options["graceful_timeout"] > 0
    assert options["preload_app"] is False


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"X-Auth-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _raw(port: int, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict]:
    """A request exactly as given (urllib would add a form content type)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read().decode("utf-8"))
    finally:
        connection.close()


def _malformed_over_http(port: int, token: str) -> None:
    """Issue 8's malformed requests, over a real socket: Manila's 400 body each time."""
    auth = {"X-Auth-Token": token}
    valid = b'{"share": {"size": 1, "share_proto": "NFS"}}'
    surrogate = b'{"share": {"size": 1, "share_proto": "NFS", "name": "\\ud800"}}'
    for body, headers, message in [
        (surrogate, {"Content-Type": "application/json"}, None),
        (valid, {"Content-Type": "text/plain"}, "Unsupported Content-Type"),
        (b"share=1", {"Content-Type": "application/x-www-form-urlencoded"}, "Unsupported Content-Type"),
        (b"<share/>", {"Content-Type": "application/xml"}, "Unsupported Content-Type"),
        (valid, {}, "Unsupported Content-Type"),
        (b'{"share": {"name": "\xed\xa0\x80"}}', {"Content-Type": "application/json"},
         "Malformed request body"),
    ]:
        status, answer = _raw(port, "POST", "/v2/shares", body, {**auth, **headers})
        assert status == 400 and answer["badRequest"]["code"] == 400, (body, headers, answer)
        assert message is None or answer["badRequest"]["message"] == message, answer
    for path in ("/v2/shares/%ed%a0%80", "/v2/shares?name=%ed%a0%80&sort_key=%ff", "/v2/shares/%ff/metadata"):
        status, answer = _raw(port, "GET", path, None, auth)
        assert status in (200, 400, 404), (path, answer)


def _kept_alive(port: int, token: str) -> None:
    """Polling clients (manilaclient, keystoneauth, Terraform) reuse one
    connection: every answer keeps it open, no new TCP connection per poll."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        first = None
        for _ in range(5):
            connection.request("GET", "/v2/shares", headers={"X-Auth-Token": token})
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b'{"shares": []}'
            assert (response.getheader("Connection") or "").lower() != "close"
            first = first or connection.sock
            assert connection.sock is first  # http.client reconnects when the server closed
    finally:
        connection.close()


def test_served_by_gunicorn(zookeeper_server, tmp_path):
    port = free_port()
    with chroot(zookeeper_server.hosts) as zk_root:
        path = tmp_path / "shareflow.toml"
        path.write_text(
            f'state_dir = "{tmp_path}/var"\n'
            f'[database]\nurl = "sqlite:///{tmp_path}/api.db"\n'
            f'[zookeeper]\nhosts = "{zookeeper_server.hosts}"\nchroot = "{zk_root}"\n'
            f'[api]\nbind = "127.0.0.1:{port}"\nworkers = 2\n'
            f'[auth]\ntokens_file = "{tmp_path}/tokens.json"\n'
        )
        db = Database(f"sqlite:///{tmp_path}/api.db")
        upgrade(db)
        db.dispose()
        env = {k: v for k, v in os.environ.items() if k != "SHAREFLOW_CONFIG"}
        proc = subprocess.Popen([sys.executable, "-m", "shareflow.api.server", "--config", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    status, doc = _get(base + "/")
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"shareflow-api did not start: {proc.communicate(timeout=5)[0]}")
                    time.sleep(0.1)
            assert status == 300 and doc["versions"][0]["version"] == "2.67"
            assert _get(base + "/v2/shares")[0] == 401
            # Issued after the workers started: accepted without a restart.
            token, _ = TokenFile(tmp_path / "tokens.json").issue("demo")
            for _ in range(6):  # several requests: reach both workers
                status, body = _get(base + "/v2/shares", token)
                assert status == 200 and body == {"shares": []}
            _malformed_over_http(port, token)
            _kept_alive(port, token)
            assert _get(base + "/v2/shares", token) == (200, {"shares": []})
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                output = proc.communicate(timeout=server.GRACEFUL_TIMEOUT + 10)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                output = proc.communicate()[0]
        assert proc.returncode == 0, output
        assert '"GET /v2/shares HTTP/1.1" 200' in output  # the access log on stdout
