"""Secret redaction on what the fallback shows, as contextd does on its own answers.

contextd passes memory contents, checkpoint summaries/descriptions/contents and code search
results through its secret scrubber (``internal/secrets``) before they leave the server, putting
``[REDACTED]`` where a secret was. guardian's fallback must not show an agent more than contextd
would, so it redacts the same kinds of secrets — cloud and platform keys and tokens, private key
blocks, JWTs, bearer tokens, credentials in URLs and ``NAME=value`` credential assignments. The
patterns are guardian's own, written for those kinds; they are deliberately broad (a false
redaction costs a word, a missed one leaks a secret).
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

_PATTERNS = [
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    r"(?i)\baws[\w.-]{0,20}?(?:secret|key)[\w.-]{0,20}?\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}['\"]?",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}\b",
    r"\bglpat-[A-Za-z0-9_\-]{20,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b",
    r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
    r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}",
    r"\bAIza[0-9A-Za-z_\-]{35}",
    r"\bya29\.[0-9A-Za-z_\-]{20,}",
    r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
    r"\bSK[0-9a-fA-F]{32}\b",
    r"\bnpm_[A-Za-z0-9]{36}\b",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{16,}",
    r"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|mssql)://[^\s:@/]+:[^\s@/]+@\S+",
    r"(?i)\bAccountKey=[A-Za-z0-9+/=]{40,}",
    r"(?i)\b(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|client[_-]?secret|secret[_-]?key|secret|"
    r"password|passwd|pwd)\b[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{8,}[\"']?",
    r"(?m)^\s*(?:export\s+)?[A-Z][A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY)"
    r"[A-Z0-9_]*\s*=\s*\S+",
]
_FLAGGED = [re.compile(p) for p in _PATTERNS]


def scrub(text: str) -> str:
    """``text`` with every secret-looking span replaced by ``[REDACTED]``."""
    if not text:
        return text
    for pattern in _FLAGGED:
        text = pattern.sub(REDACTED, text)
    return text
