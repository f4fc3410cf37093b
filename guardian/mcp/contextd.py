"""How contextd (v0.5, single shared chromem store) names its collections and tenants.

These rules decide which collection and which ``where`` filter a tool call reads, so they are
contextd's exactly (``internal/sanitize``, ``internal/project``, ``internal/tenant``,
``internal/remediation``): a memory_search for project ``my-app`` reads collection
``my_app_memories`` with ``{"tenant_id": "my-app", "project_id": "my-app"}`` (contextd's payload
isolation puts the project id in both fields for memories).
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
from pathlib import Path

MAX_IDENTIFIER = 64
HASH_SUFFIX = 9  # "_" + 8 hex digits
DEFAULT_IDENTIFIER = "default"
_INVALID = re.compile(r"[^a-z0-9_]")
_RUNS = re.compile(r"_{2,}")
_NOT_WORD = re.compile(r"[^A-Za-z0-9_]")
_GITHUB_SSH = re.compile(r"git@github\.com:([^/]+)/")
_GITHUB_HTTPS = re.compile(r"github\.com/([^/]+)/")


def _truncate_with_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return text[: MAX_IDENTIFIER - HASH_SUFFIX].rstrip("_") + "_" + digest


def identifier(value: str) -> str:
    """sanitize.Identifier: lowercase, [a-z0-9_] only, runs of _ collapsed, trimmed, <= 64."""
    if not value:
        return DEFAULT_IDENTIFIER
    cleaned = _RUNS.sub("_", _INVALID.sub("_", value.lower())).strip("_")
    if not cleaned:
        return DEFAULT_IDENTIFIER
    return _truncate_with_hash(cleaned) if len(cleaned) > MAX_IDENTIFIER else cleaned


def collection_name_limit(name: str) -> str:
    """sanitize.Name: lowercase, [a-z0-9_] only (no collapsing), <= 64 with a hash suffix."""
    if not name:
        return DEFAULT_IDENTIFIER
    cleaned = _INVALID.sub("_", name.lower())
    return _truncate_with_hash(cleaned) if len(cleaned) > MAX_IDENTIFIER else cleaned


def project_collection(project_id: str, kind: str) -> str:
    """project.GetCollectionName: ``{identifier(project)}_{kind}``, e.g. ``my_app_memories``."""
    return collection_name_limit(f"{identifier(project_id)}_{kind}")


def codebase_collection(tenant_id: str, project_name: str) -> str:
    """sanitize.CollectionName(tenant, project, "codebase")."""
    name = f"{identifier(tenant_id)}_{identifier(project_name)}_codebase"
    return _truncate_with_hash(name) if len(name) > MAX_IDENTIFIER else name


def _path_part(value: str) -> str:
    return _NOT_WORD.sub("_", value)


def remediation_collection(tenant_id: str, scope: str, team_id: str = "", project_path: str = "") -> str:
    """remediation's collectionName: remediations_org_<t>, _team_<t>_<team>, _project_<t>_<path>."""
    tenant = _path_part(tenant_id)
    if scope == "team":
        name = f"remediations_team_{tenant}_{_path_part(team_id)}"
    elif scope == "project":
        name = f"remediations_project_{tenant}_{_path_part(project_path)}"
    else:
        name = f"remediations_org_{tenant}"
    return collection_name_limit(name)


def project_id_from_path(project_path: str) -> str:
    """deriveProjectID: the identifier of the path's last element ("" for no path)."""
    if not project_path:
        return ""
    return identifier(os.path.basename(os.path.normpath(project_path)))


def tenant_for_path(project_path: str = "", environ=os.environ, home: Path | None = None) -> str:
    """tenant.GetTenantIDForPath: GitHub user of the origin remote, git user.name, $USER, "local"."""
    user = _github_user(project_path) if project_path else ""
    if user:
        return identifier(user.lower())
    name = _git_user_name(home or Path(environ.get("HOME") or os.path.expanduser("~")))
    if name:
        return identifier(name.lower().replace(" ", "_"))
    if environ.get("USER"):
        return identifier(environ["USER"].lower())
    return "local"


def _github_user(project_path: str) -> str:
    url = _read_git_config(Path(project_path) / ".git" / "config", 'remote "origin"', "url")
    for pattern in (_GITHUB_SSH, _GITHUB_HTTPS):
        found = pattern.search(url)
        if found:
            return found.group(1)
    return ""


def _git_user_name(home: Path) -> str:
    for path in (home / ".gitconfig", home / ".config" / "git" / "config"):
        name = _read_git_config(path, "user", "name")
        if name:
            return name
    return ""


def _read_git_config(path: Path, section: str, key: str) -> str:
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
        return parser.get(section, key, fallback="").strip().strip('"')
    except (OSError, configparser.Error):
        return ""
