"""Where contextd keeps its chromem store, and whether it compresses it: read as contextd reads them.

contextd (v0.5, ``cmd/contextd/main.go`` and ``internal/config/``) decides at start-up:

1. ``LoadWithFile``: the file ``$HOME/.config/contextd/config.yaml`` must resolve (symlinks followed) to
   a place under ``~/.config/contextd/`` or ``/etc/contextd/``; when it exists it must be mode 0600 or
   0400 and at most 1 MiB, and is parsed as YAML (yaml.v3: YAML 1.2, so ``yes`` is a string, not true).
   Every environment variable is laid over it, its name lower-cased and split at the first ``_``
   (``SERVER_HTTP_PORT`` -> ``server.http_port``; no ordinary name reaches ``vectorstore.chromem.path``,
   which takes a dot in the name, e.g. ``VECTORSTORE_CHROMEM.PATH``). The whole is decoded into its
   config structs with weak typing (``"true"`` is a bool, ``1`` a string), defaults are applied
   (``vectorstore.chromem.path`` ``~/.config/contextd/vectorstore``, ``compress`` false) and it is
   validated (a path holding ``..``, a port out of range, an unknown granularity, ... fail).
2. Any failure there is only a warning: contextd then uses ``Load()``, its environment alone -
   ``CONTEXTD_VECTORSTORE_CHROMEM_PATH`` (default ``~/.config/contextd/vectorstore``) and
   ``CONTEXTD_VECTORSTORE_CHROMEM_COMPRESS`` (strconv.ParseBool; unset or invalid: false).
3. A path starting with ``~`` is ``$HOME`` joined with the rest (``~x`` is ``$HOME/x``); a relative path
   is relative to contextd's working folder (guardian's, for the child it starts).

:func:`contextd_store` follows those steps with a YAML library (ruamel.yaml, YAML 1.2) and says where
the path and the compress flag came from, and why a config file contextd ignores is ignored.
"""

from __future__ import annotations

import os
import posixpath
import pwd
import re
import stat as stat_mod
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Mapping

DEFAULT_PATH = "~/.config/contextd/vectorstore"
CONFIG_FILE = (".config", "contextd", "config.yaml")   # under $HOME
ALLOWED_DIRS = ((".config", "contextd"),)              # under the resolved $HOME; and /etc/contextd
MAX_FILE = 1 << 20
PATH_ENV = "CONTEXTD_VECTORSTORE_CHROMEM_PATH"
COMPRESS_ENV = "CONTEXTD_VECTORSTORE_CHROMEM_COMPRESS"
PROVIDER_ENV = "CONTEXTD_VECTORSTORE_PROVIDER"

FILE, ENV, DEFAULT = "contextd config file", "contextd env", "default"


@dataclass(frozen=True)
class ContextdStore:
    path: str                 # absolute
    compress: bool
    path_source: str          # FILE | ENV | DEFAULT
    compress_source: str
    config_file: str          # the file contextd reads (whether or not it exists)
    warning: str = ""         # one line: why contextd ignores its config file, or that it keeps no chromem store
    provider: str = "chromem"   # contextd's vector store: another one keeps no chromem store


class Invalid(Exception):
    """contextd's LoadWithFile fails: contextd warns and falls back to its environment alone."""


def contextd_store(environ: Mapping[str, str] | None = None, cwd: str | None = None) -> ContextdStore:
    """contextd's store path and compress flag, as it would decide them now in ``environ`` (a
    relative path is relative to ``cwd``, contextd's working folder; None: this process's)."""
    environ = os.environ if environ is None else environ
    home = home_dir(environ)
    config_file = os.path.join(home, *CONFIG_FILE)
    warning = ""
    try:
        found = load_with_file(config_file, environ, home)
    except Invalid as exc:
        warning = (f"contextd ignores its config file {config_file} ({exc}) and uses its environment alone; "
                   "fix the file (contextd logs the same warning)")
        found = load_environment(environ)
    path, path_source, compress, compress_source, provider = found
    if provider not in ("chromem", ""):
        warning = "; ".join(filter(None, (warning, f"contextd is configured for the {provider!r} vector store, "
                                                    "which keeps no chromem store")))
    return ContextdStore(expand(path, home, cwd), compress, path_source, compress_source, config_file, warning,
                         provider or "chromem")


def home_dir(environ: Mapping[str, str]) -> str:
    """$HOME, as contextd's getHomeDir prefers it (else the password database, where Go would fail)."""
    return environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir


def expand(path: str, home: str, cwd: str | None = None) -> str:
    """contextd's expandChromemPath (``~`` + rest joined to $HOME), made absolute (against ``cwd``)."""
    if path.startswith("~"):
        return go_clean(home + "/" + path[1:])
    return os.path.abspath(os.path.join(cwd, path) if cwd else path)


def go_clean(path: str) -> str:
    """Go's filepath.Clean (posixpath.normpath keeps a leading ``//``; Go does not)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


# --------------------------------------------------------------------------- the environment alone (Load)


def load_environment(environ: Mapping[str, str]) -> tuple:
    path = environ.get(PATH_ENV) or ""
    raw = environ.get(COMPRESS_ENV) or ""
    compress = go_bool(raw) if raw and go_bool(raw) is not None else False
    return (path or DEFAULT_PATH, ENV if path else DEFAULT, compress, ENV if raw else DEFAULT,
            environ.get(PROVIDER_ENV) or "chromem")


def go_bool(text: str) -> bool | None:
    """strconv.ParseBool; None when it fails."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


# --------------------------------------------------------------------------- the file, then the environment


def load_with_file(config_file: str, environ: Mapping[str, str], home: str) -> tuple:
    check_location(config_file, home)
    tree = read_yaml(config_file)
    from_env = environment_tree(environ)
    merge(from_env, tree)
    config = decode(tree, SCHEMA, "")
    validate(config, environ)
    chromem = config.get("vectorstore", {}).get("chromem", {})
    env_chromem = subtree(from_env, "vectorstore", "chromem")
    path = chromem.get("path") or ""
    compress_set = chromem.get("compress") is not None
    path_source = (ENV if "path" in env_chromem else FILE) if path else DEFAULT
    compress_source = (ENV if "compress" in env_chromem else FILE) if compress_set else DEFAULT
    return (path or DEFAULT_PATH, path_source, bool(chromem.get("compress")), compress_source,
            config.get("vectorstore", {}).get("provider") or "chromem")


def check_location(config_file: str, home: str) -> None:
    """validateConfigPath: the file (symlinks resolved) under ~/.config/contextd/ or /etc/contextd/."""
    absolute = os.path.abspath(config_file)
    real_home = os.path.realpath(home)
    try:
        resolved = os.path.realpath(absolute, strict=True)
    except OSError:
        resolved = real_home + absolute[len(home):] if absolute.startswith(home + "/") else absolute
    resolved = go_clean(resolved)
    allowed = [os.path.join(real_home, *parts) for parts in ALLOWED_DIRS] + ["/etc/contextd"]
    if not any(resolved == d or resolved.startswith(d + "/") for d in allowed):
        raise Invalid(f"it resolves to {resolved}, and contextd reads one only under ~/.config/contextd/ or "
                      "/etc/contextd/")


def read_yaml(config_file: str) -> dict:
    try:
        os.stat(config_file)
    except OSError:
        return {}   # no file (or none contextd can stat): the environment and the defaults alone
    try:
        with open(config_file, "rb") as handle:
            info = os.fstat(handle.fileno())
            perm = stat_mod.S_IMODE(info.st_mode) & 0o777
            if perm not in (0o600, 0o400):
                raise Invalid(f"insecure permissions {perm:04o}: contextd wants 0600 or 0400")
            if info.st_size > MAX_FILE:
                raise Invalid(f"{info.st_size} bytes, more than contextd's limit of {MAX_FILE}")
            data = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise Invalid(f"cannot read it: {exc.strerror or exc}") from None
    return parse_yaml(data)


def parse_yaml(data: bytes) -> dict:
    """The file as yaml.v3 hands it to koanf: YAML 1.2, the first document, a mapping (or nothing)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import SafeConstructor
    from ruamel.yaml.error import YAMLError

    class Constructor(SafeConstructor):
        """Timestamps stay strings (yaml.v3 decodes them to a string where the target is untyped)."""

    Constructor.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = Constructor
    try:
        text = data.decode("utf-8")
        tree = next(iter(yaml.load_all(text)), None)
    except (YAMLError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Invalid(f"not valid YAML: {one_line(exc)}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise Invalid(f"its top level is a {type(tree).__name__}, not a mapping")
    return tree


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def environment_tree(environ: Mapping[str, str]) -> dict:
    """koanf's env provider with contextd's key transform: lower-case, split at the first ``_``, then
    nested at every ``.`` (koanf's Unflatten: a value already there that is not a map is passed over)."""
    flat: dict[str, str] = {}
    for name, value in environ.items():
        key = name.lower()
        section, underscore, rest = key.partition("_")
        flat[f"{section}.{rest}" if underscore else key] = value
    tree: dict = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if isinstance(child, dict):
                node = child
        node[parts[-1]] = value
    return tree


def merge(source: dict, target: dict) -> None:
    """koanf's maps.Merge: ``source`` laid over ``target`` (maps merged key by key, anything else replaces)."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(value, target[key])
        else:
            target[key] = value


def subtree(tree: dict, *keys: str) -> dict:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree if isinstance(tree, dict) else {}


# --------------------------------------------------------------------------- decoding (mapstructure, weakly typed)

FALLBACK = {"enabled": "bool", "local_path": "string", "sync_on_connect": "bool", "health_check_interval": "string",
            "wal_path": "string", "wal_retention_days": "int"}
RULE = {"enabled": "bool", "maxfiles": "int", "maxsizekb": "int", "timeoutms": "int"}
# contextd's Config: struct fields by their koanf tag, or (no tag) by their Go name, matched ignoring case
SCHEMA = {
    "production": {"enabled": "bool", "local_mode_acknowledged": "bool", "require_authentication": "bool",
                   "authentication_configured": "bool", "require_tls": "bool", "allow_no_isolation": "bool"},
    "server": {"http_port": "int", "shutdown_timeout": "duration"},
    "observability": {"enable_telemetry": "bool", "service_name": "string", "otlp_endpoint": "string",
                      "otlp_protocol": "string", "otlp_insecure": "bool", "otlp_tls_skip_verify": "bool"},
    "prefetch": {"enabled": "bool", "cachettl": "duration", "cachemaxentries": "int",
                 "rules": {"branchdiff": RULE, "recentcommit": RULE, "commonfiles": RULE}},
    "checkpoint": {"max_content_size_kb": "int"},
    "vectorstore": {"provider": "string", "chromem": {"path": "string", "compress": "bool",
                                                      "default_collection": "string", "vector_size": "int"},
                    "fallback": FALLBACK},
    "qdrant": {"host": "string", "port": "int", "http_port": "int", "collection_name": "string",
               "vector_size": "uint", "data_path": "string"},
    "embeddings": {"provider": "string", "base_url": "string", "model": "string", "cache_dir": "string",
                   "onnx_version": "string"},
    "repository": {"ignore_files": "strings", "fallback_excludes": "strings"},
    "statusline": {"enabled": "bool", "endpoint": "string",
                   "show": {"service": "bool", "memories": "bool", "checkpoints": "bool", "context": "bool",
                            "confidence": "bool", "compression": "bool"},
                   "thresholds": {"context_warning": "int", "context_critical": "int"}},
    "consolidationscheduler": {"enabled": "bool", "interval": "duration", "similarity_threshold": "float"},
    "reasoningbank": {"granularity": "string", "max_buffered_turns": "int"},
    "fallback": FALLBACK,
}
INT64 = (-(1 << 63), (1 << 63) - 1)


def decode(value, kind, name: str):
    """``value`` decoded as ``kind`` the way koanf's weakly typed mapstructure does; Invalid when it fails.
    A struct (a dict kind) gives a dict of the fields present (None: absent or null)."""
    if value is None:
        return {} if isinstance(kind, dict) else None
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            raise Invalid(f"{name or 'the top level'}: expected a map, got {go_kind(value)}")
        out = {}
        for field, field_kind in kind.items():
            key = field if field in value else next((k for k in value if str(k).lower() == field), None)
            if key is not None:
                out[field] = decode(value[key], field_kind, f"{name}.{field}" if name else field)
        return out
    return DECODERS[kind](value, name)


def go_kind(value) -> str:
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "slice", dict: "map"}.get(
        type(value), type(value).__name__)


def as_string(value, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float_text(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise Invalid(f"{name}: expected a string, got {go_kind(value)}")


def go_float_text(value: float) -> str:
    """strconv.FormatFloat(f, 'f', -1, 64): the shortest digits, never an exponent."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(value)).normalize(), "f")


def as_bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        parsed = go_bool(value)
        if parsed is not None or value == "":
            return bool(parsed)
    raise Invalid(f"{name}: cannot be read as a bool: {value!r}")


def as_int(value, name: str, unsigned: bool = False) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else 0
    if isinstance(value, str):
        parsed = go_int(value or "0")
        if parsed is not None and not (unsigned and parsed < 0):
            return parsed
    raise Invalid(f"{name}: cannot be read as an integer: {value!r}")


def go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64): base prefixes 0x, 0o, 0b and a leading 0 (octal), underscores."""
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text[1:] if text[:1] == "+" else text)
    try:
        if re.fullmatch(r"0[0-7_]+", body):
            number = int(body[1:].lstrip("_"), 8)
        else:
            number = int(body, 0) if body[:1].isdigit() else None
    except ValueError:
        return None
    if number is None or not INT64[0] <= sign * number <= INT64[1]:
        return None
    return sign * number


def as_float(value, name: str) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        if value == "":
            return 0.0
        try:
            return float(value.replace("_", "") if value[:1].isdigit() else value)
        except ValueError:
            pass
    raise Invalid(f"{name}: cannot be read as a number: {value!r}")


DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
                  "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")


def as_duration(value, name: str) -> int:
    """time.ParseDuration for a string (nanoseconds); a number decodes as an integer."""
    if not isinstance(value, str):
        return as_int(value, name)
    text = value
    sign = -1 if text[:1] == "-" else 1
    text = text[1:] if text[:1] in "+-" else text
    if text == "0":
        return 0
    total, at = Decimal(0), 0
    while at < len(text):
        match = _DURATION_PART.match(text, at)
        if not match or match.group(1) in ("", "."):
            raise Invalid(f"{name}: not a duration: {value!r}")
        try:
            total += Decimal(match.group(1)) * DURATION_UNITS[match.group(2)]
        except InvalidOperation:
            raise Invalid(f"{name}: not a duration: {value!r}") from None
        at = match.end()
    if not text:
        raise Invalid(f"{name}: not a duration: {value!r}")
    return sign * int(total)


def as_strings(value, name: str) -> list[str]:
    if isinstance(value, list):
        return [as_string(item, f"{name}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict) and not value:
        return []
    return [as_string(value, name)]


DECODERS = {"string": as_string, "bool": as_bool, "int": as_int, "float": as_float, "duration": as_duration,
            "strings": as_strings, "uint": lambda value, name: as_int(value, name, unsigned=True)}


# --------------------------------------------------------------------------- defaults and validation


_HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")


def validate(config: dict, environ: Mapping[str, str]) -> None:
    """contextd's applyDefaults, then Config.Validate (only what can fail)."""
    server, qdrant = config.get("server", {}), config.get("qdrant", {})
    embeddings, bank = config.get("embeddings", {}), config.get("reasoningbank", {})
    port = server.get("http_port") or 9090
    if not 1 <= port <= 65535:
        raise Invalid(f"invalid server port: {port} (must be 1-65535)")
    if (server.get("shutdown_timeout") or 10 * 10**9) <= 0:
        raise Invalid("shutdown timeout must be positive")
    host = qdrant.get("host") or "localhost"
    if not valid_host(host):
        raise Invalid(f"invalid QDRANT_HOST: invalid hostname format: {host}")
    check_path(qdrant.get("data_path") or "", "CONTEXTD_DATA_PATH")
    check_path(config.get("vectorstore", {}).get("chromem", {}).get("path") or DEFAULT_PATH,
               "CONTEXTD_VECTORSTORE_CHROMEM_PATH")
    if embeddings.get("cache_dir"):
        check_path(embeddings["cache_dir"], "EMBEDDINGS_CACHE_DIR")
    base_url = embeddings.get("base_url") or "http://localhost:8080"
    if not base_url.startswith(("http://", "https://")):
        raise Invalid(f"invalid EMBEDDING_BASE_URL: URL must use http:// or https:// scheme, got: {base_url}")
    check_production(config.get("production", {}), environ)
    if (bank.get("granularity") or "") not in ("", "turn", "session"):
        raise Invalid(f"invalid CONTEXTD_REASONINGBANK_GRANULARITY: {bank['granularity']!r}")
    if (bank.get("max_buffered_turns") or 0) < 0:
        raise Invalid("CONTEXTD_REASONINGBANK_MAX_BUFFERED_TURNS must be non-negative")


def valid_host(host: str) -> bool:
    import ipaddress

    if "%" not in host:   # Go's net.ParseIP takes no zone
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            pass
    return bool(_HOSTNAME.match(host))


def check_path(path: str, name: str) -> None:
    """validatePath: no ``..``; an absolute path that cleaning shortens by more than one level fails."""
    if ".." in path:
        raise Invalid(f"invalid {name}: path contains traversal sequence: {path}")
    if path.startswith("/") and go_clean(path).count("/") < path.count("/") - 1:
        raise Invalid(f"invalid {name}: path traversal detected: {path} (resolves to {go_clean(path)})")


def check_production(production: dict, environ: Mapping[str, str]) -> None:
    flags = ("enabled", "local_mode_acknowledged", "require_authentication", "require_tls")
    if not any(production.get(flag) for flag in flags) and environ.get("CONTEXTD_PRODUCTION_MODE") == "1":
        local = environ.get("CONTEXTD_LOCAL_MODE") == "1"   # production mode from the environment
        production = {"enabled": True, "require_authentication": not local, "authentication_configured": False}
    if not production.get("enabled"):
        return
    if production.get("allow_no_isolation"):
        raise Invalid("production config: NoIsolation mode cannot be enabled in production")
    if production.get("require_authentication") and not production.get("authentication_configured"):
        raise Invalid("production config: RequireAuthentication enabled but authentication not configured")
