"""The fallback redacts secrets as contextd's scrubber does: an agent never sees more than contextd shows."""

from __future__ import annotations

import pytest

from guardian.mcp.scrub import REDACTED, scrub

SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_" + "a1B2" * 9,
    "github_pat_" + "A1b2C3d4E5" * 3,
    "glpat-" + "x1Y2z3" * 4,
    "xoxb-" + "1234567890-abcdef",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "sk-ant-api03-" + "abcDEF123_" * 3,
    "sk-proj-" + "Abc123Def456Ghi789Jkl012",
    "AIza" + "SyA1234567890abcdefghijklmnopqrstuv",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Authorization: Bearer abcdefghijklmnop1234567890",
    "postgres://admin:hunter2hunter2@db.internal:5432/app",
    "password: correct-horse-battery",
    "export STRIPE_API_KEY=whatever-value-here",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "npm_" + "a" * 36,
]


@pytest.mark.parametrize("secret", SECRETS)
def test_each_kind_is_redacted(secret):
    text = f"fixed it by rotating\n{secret}\nyesterday"
    cleaned = scrub(text)
    assert REDACTED in cleaned and cleaned.startswith("fixed it by rotating\n")
    core = secret.split()[-1].split("=")[-1].split("@")[0][-12:]
    assert core not in cleaned


def test_ordinary_text_is_untouched():
    text = ("JWT refresh token rotation broke mobile clients; added a grace window. Use the password "
            "manager. postgres://localhost/app has no credentials. key rotation every 90 days.")
    assert scrub(text) == text
    assert scrub("") == ""


def test_fallback_rows_are_scrubbed():
    from guardian.mcp import answers

    memory = {"id": "m", "title": "t", "content": "use AKIAIOSFODNN7EXAMPLE here", "outcome": "success",
              "confidence": 0.9, "tags": []}
    assert answers._memory_row(memory, 0.5)["content"] == "use [REDACTED] here"
    hit = answers.Hit(0, 1.0, {"summary": "token ghp_" + "x1" * 18, "description": "ok"}, "", "c")
    row = answers._checkpoint_row(hit)
    assert row["summary"] == "token [REDACTED]" and row["description"] == "ok"
