"""guardian.server.access: who may ask what, decided from the request line and headers alone."""

from __future__ import annotations

import os
import stat

import pytest

from guardian.server.access import Access, SecretFileError, load_or_create_secret, read_secret

SECRET = "s" * 43
PORT = 8765
HOST = f"127.0.0.1:{PORT}"
SAME = {"Host": HOST, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
        "Origin": f"http://{HOST}"}


def access(token: str = "", host: str = "127.0.0.1", secret: str | None = SECRET) -> Access:
    return Access(token, host, lambda: PORT, secret)


def signed(a: Access) -> dict:
    return {"Cookie": f"other=1; {a.cookie_name}={a.cookie_value}"}


@pytest.mark.parametrize("host, allowed", [
    (HOST, True), (f"localhost:{PORT}", True), (f"[::1]:{PORT}", True), ("127.0.0.1", True),
    (f"evil.example:{PORT}", False), ("evil.example", False), (f"127.0.0.1:{PORT + 1}", False),
    (f"user@127.0.0.1:{PORT}", False), ("127.0.0.1:80/x", False), ("", False)])
def test_the_host_must_name_this_server(host, allowed):
    verdict = access().screen("GET", "/v1/status", {"Host": host}, console=False)
    assert verdict.refused is not allowed
    if not allowed:
        assert verdict.status == 421


def test_a_configured_host_name_is_this_server_too():
    assert not access(host="box.lan").screen("GET", "/v1/status", {"Host": f"box.lan:{PORT}"}, console=False).refused


def test_another_site_may_follow_a_link_to_a_page_and_nothing_else():
    a = access()
    link = {"Host": HOST, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert not a.screen("GET", "/console/", link, console=True).refused
    for changed in ({"Sec-Fetch-Mode": "cors"}, {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script"},
                    {"Sec-Fetch-Dest": "iframe"}, {"Origin": "http://evil.example"}):
        assert a.screen("GET", "/console/", {**link, **changed}, console=True).status == 403, changed
    form = {**link, "Origin": "http://evil.example", **signed(a)}
    assert a.screen("POST", "/console/restore", form, console=True).status == 403
    # another port of 127.0.0.1 is "same-site" to a browser (its cookies go along), not same-origin
    neighbour = {**SAME, "Sec-Fetch-Site": "same-site", "Origin": f"http://127.0.0.1:{PORT + 1}", **signed(a)}
    assert a.screen("POST", "/console/restore", neighbour, console=True).status == 403
    assert a.screen("POST", "/console/restore", {**SAME, "Origin": "null", **signed(a)}, console=True).status == 403


def test_a_console_action_needs_the_cookie_and_reading_needs_it_only_beyond_loopback_or_with_a_token():
    a = access()
    assert a.screen("POST", "/console/restore", SAME, console=True).status == 403
    assert not a.screen("POST", "/console/restore", {**SAME, **signed(a)}, console=True).refused
    assert not a.screen("GET", "/console/", SAME, console=True).refused
    for guarded in (access(token="t0ken"), access(host="0.0.0.0")):
        assert guarded.screen("GET", "/console/", SAME, console=True).status == 401
        assert not guarded.screen("GET", "/console/", {**SAME, **signed(guarded)}, console=True).refused
        assert not guarded.screen("GET", "/console/static/console.css", SAME, console=True).refused
    tokened = access(token="t0ken")
    assert not tokened.screen("GET", "/console/", {**SAME, "Authorization": "Bearer t0ken"}, console=True).refused
    assert tokened.screen("GET", "/v1/status", {"Host": HOST}, console=False).status == 401
    assert not tokened.screen("GET", "/healthz", {"Host": HOST}, console=False, open_route=True).refused
    wrong = {a.cookie_name: "0" * 64}
    assert not a.cookie_ok(f"{a.cookie_name}={wrong[a.cookie_name]}") and not a.form_ok("guess")
    assert a.form_ok(a.form_token) and a.key_ok(SECRET) and not a.key_ok(SECRET[:-1])
    assert not access(secret=None).cookie_ok("guardian_=x")


def test_the_secret_is_made_once_private_and_never_read_through_a_symlink(tmp_path):
    path = tmp_path / "console.secret"
    secret = load_or_create_secret(path)
    assert len(secret) >= 40 and load_or_create_secret(path) == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    with pytest.raises(SecretFileError):
        read_secret(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link.secret"
    link.symlink_to(path)
    with pytest.raises(SecretFileError):
        load_or_create_secret(link)
    assert read_secret(tmp_path / "none") is None
