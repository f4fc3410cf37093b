"""Configuration: one TOML file, overridden by GUARDIAN_* environment variables, then by flags.

Everything is validated into one frozen :class:`Config`; an invalid value raises
:class:`ConfigError` naming the field and where it came from. With no store given to guardian
(``--store``, ``GUARDIAN_STORE``, ``store =``), the store and its compress flag are contextd's, read
as contextd reads its own configuration (:mod:`guardian.contextd_config`); ``Config.origin`` says
where each came from.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from guardian.errors import ConfigError
from guardian.local.paths import DEFAULT_STORE

COMPRESS_CHOICES = ("auto", "true", "false")
FLAG, ENV, GUARDIAN_CONFIG, DETECTED = "flag", "env", "guardian config", "detected"
CONTEXTD_FILE = "contextd config file"   # (guardian.contextd_config.FILE)


@dataclass(frozen=True)
class StoreOrigin:
    """Where the store path and the compress setting came from: ``flag``, ``env`` (GUARDIAN_*),
    ``guardian config``, ``contextd config file``, ``contextd env``, ``default`` (contextd's own
    default), or for compress also ``detected`` (from the files: a store given to guardian)."""

    store: str = "default"
    compress: str = DETECTED
    guardian_config: str = ""       # guardian's config file, when it set either
    contextd_config: str = ""       # contextd's config file, when contextd's configuration was read
    warning: str = ""               # contextd ignores its config file (why), or keeps no chromem store

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v or k in ("store", "compress")}

    def describe(self, what: str = "store") -> str:
        """``contextd config file /home/u/.config/contextd/config.yaml``, ``flag``, ``default``, ..."""
        source = getattr(self, what)
        if source == GUARDIAN_CONFIG:
            return f"{source} {self.guardian_config}"
        if source == CONTEXTD_FILE:
            return f"{source} {self.contextd_config}"
        return "contextd's default" if source == "default" else source


@dataclass(frozen=True)
class Config:
    store: str = DEFAULT_STORE
    compress: str = "auto"  # auto | true | false
    state_dir: str = ""
    log_level: str = "info"
    log_file: str = ""
    # snapshots
    snapshot_interval_minutes: float = 60.0
    keep_last: int = 24
    keep_hourly: int = 24
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_within_minutes: float = 60.0   # every snapshot this close to the newest is kept
    # continuous capture and live repair (guardian run)
    capture: bool = True
    capture_quiet_seconds: float = 1.0      # a burst of writes makes one snapshot: wait this long after the last
    capture_max_wait_seconds: float = 3.0   # but never longer than this after the first change not captured
    settle_seconds: float = 1.0             # judged once unchanged this long and held open for writing by nobody
    held_repair_seconds: float = 3.0        # a file held for writing this long that chromem refuses is made loadable
    live_repair: bool = True
    # repair
    collection_names: tuple[str, ...] = ()
    # HTTP endpoint
    http_host: str = "127.0.0.1"
    http_port: int = 8765
    http_token: str = ""
    # supervisor
    stop_timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_jitter: float = 0.1  # fraction of each restart delay added or removed at random
    stable_seconds: float = 60.0
    max_failures: int = 5
    failure_window: float = 300.0
    # watcher
    watch: bool = True
    debounce_seconds: float = 0.3
    # alerts
    alert_command: str = ""
    alert_webhook: str = ""
    # off-machine replicas (guardian/replicas/): URLs, S3 defaults for them, the encryption key
    replicas: tuple[str, ...] = ()
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_path_style: bool = False
    s3_profile: str = ""
    replica_key_file: str = ""            # default $XDG_CONFIG_HOME/guardian/replica.key
    replica_interval_seconds: float = 60.0   # the sidecar's catch-up check between snapshots
    replica_backoff_max: float = 300.0
    replica_check_days: float = 7.0       # each object a replica relies on is read back this often
    replica_check_mb: float = 256.0       # ... at most this much per push (objects whose listing changed: always)
    # text embedding (optional extra)
    embed_url: str = ""
    embed_api: str = "openai"  # openai | tei
    embed_model: str = ""
    embed_model_dir: str = ""
    # guardian mcp: when contextd counts as hung, and where contextd's own embedding model lives
    mcp_answer_timeout: float = 30.0
    mcp_start_timeout: float = 60.0   # until the child's first line (contextd loads its model first)
    mcp_early_answers: bool = True    # answer the session while contextd loads (false: contextd answers everything)
    mcp_early_grace: float = 0.05     # seconds contextd may take to answer initialize before guardian does
    contextd_model: str = ""        # default: contextd's EMBEDDINGS_MODEL, else BAAI/bge-small-en-v1.5
    contextd_models_dir: str = ""   # default: contextd's EMBEDDINGS_CACHE_DIR, else ~/.config/contextd/models
    # where store and compress came from (load_config; never read from a file or the environment)
    origin: StoreOrigin = field(default_factory=StoreOrigin, compare=False, metadata={"derived": True})

    @property
    def store_path(self) -> Path:
        return Path(os.path.expanduser(self.store))

    @property
    def compress_flag(self) -> bool | None:
        return {"auto": None, "true": True, "false": False}[self.compress]

    def replace(self, **changes: object) -> "Config":
        """A copy with ``changes`` (e.g. from flags), validated like a loaded config."""
        return _validate(dataclasses.replace(self, **changes))


FIELD_TYPES = {f.name: f.type for f in fields(Config) if not f.metadata.get("derived")}


def default_config_path() -> Path:
    env = os.environ.get("GUARDIAN_CONFIG")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg) / "guardian" / "config.toml"


URL_LISTS = ("replicas",)
# a URL list in one string: URLs end at white space (a URL never holds a raw space) or at a comma
# that starts the next URL (``,s3://…``): a comma inside a URL (a folder ``a,b``, a query value) stays
_URL_SEPARATOR = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def split_url_list(text: str) -> tuple[str, ...]:
    """``GUARDIAN_REPLICAS="s3://b/p?endpoint=http://h:8333 file:///mnt/a,b/guardian"`` -> both URLs."""
    return tuple(part.strip().rstrip(",") for part in _URL_SEPARATOR.split(text.strip())
                 if part.strip().rstrip(","))


def _coerce(name: str, value: object, source: str) -> object:
    kind = FIELD_TYPES[name]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if kind == "tuple[str, ...]":
            if isinstance(value, str) and name in URL_LISTS:
                return split_url_list(value)
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise ValueError("expected a list of strings")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError("expected a string")
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for {name!r} from {source}: {value!r} ({exc})") from None


def _validate(config: Config) -> Config:
    checks = [
        ("compress", config.compress in COMPRESS_CHOICES, "must be auto, true or false"),
        ("snapshot_interval_minutes", config.snapshot_interval_minutes > 0, "must be > 0"),
        ("keep_last", config.keep_last >= 1, "must be >= 1 (the newest snapshot is always kept)"),
        ("keep_hourly", config.keep_hourly >= 0, "must be >= 0"),
        ("keep_daily", config.keep_daily >= 0, "must be >= 0"),
        ("keep_weekly", config.keep_weekly >= 0, "must be >= 0"),
        ("keep_within_minutes", config.keep_within_minutes >= 0, "must be >= 0"),
        ("capture_quiet_seconds", config.capture_quiet_seconds >= 0, "must be >= 0"),
        ("capture_max_wait_seconds", config.capture_max_wait_seconds >= config.capture_quiet_seconds,
         "must be >= capture_quiet_seconds"),
        ("settle_seconds", config.settle_seconds > 0, "must be > 0"),
        ("held_repair_seconds", config.held_repair_seconds > 0, "must be > 0"),
        ("http_port", 0 <= config.http_port <= 65535, "must be a TCP port (0 picks a free one)"),
        ("stop_timeout", config.stop_timeout > 0, "must be > 0"),
        ("backoff_initial", config.backoff_initial > 0, "must be > 0"),
        ("backoff_max", config.backoff_max >= config.backoff_initial, "must be >= backoff_initial"),
        ("backoff_jitter", 0 <= config.backoff_jitter <= 1, "must be between 0 and 1"),
        ("max_failures", config.max_failures >= 1, "must be >= 1"),
        ("failure_window", config.failure_window > 0, "must be > 0"),
        ("debounce_seconds", config.debounce_seconds >= 0, "must be >= 0"),
        ("mcp_answer_timeout", config.mcp_answer_timeout > 0, "must be > 0"),
        ("mcp_start_timeout", config.mcp_start_timeout > 0, "must be > 0"),
        ("mcp_early_grace", config.mcp_early_grace >= 0, "must be >= 0"),
        ("replica_interval_seconds", config.replica_interval_seconds > 0, "must be > 0"),
        ("replica_backoff_max", config.replica_backoff_max > 0, "must be > 0"),
        ("replica_check_days", config.replica_check_days > 0, "must be > 0"),
        ("replica_check_mb", config.replica_check_mb >= 0, "must be >= 0"),
        ("embed_api", config.embed_api in ("openai", "tei"), "must be openai or tei"),
        ("log_level", config.log_level.lower() in ("debug", "info", "warning", "error"),
         "must be debug, info, warning or error"),
    ]
    for name, ok, why in checks:
        if not ok:
            raise ConfigError(f"invalid value for {name!r}: {getattr(config, name)!r} ({why})")
    return config


def load_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None,
                overrides: dict[str, object] | None = None) -> Config:
    """TOML file, then GUARDIAN_<FIELD> environment variables, then ``overrides`` (flags)."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    explicit = path is not None
    path = Path(path).expanduser() if path else default_config_path()
    if path.exists():
        import tomllib   # only when there is a file to read: a short command starts faster

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}",
                              "fix the TOML syntax or point GUARDIAN_CONFIG elsewhere") from None
        data = data.get("guardian", data)
        for key, value in data.items():
            if key not in FIELD_TYPES:
                raise ConfigError(f"unknown field {key!r} in {path}", f"known fields: {', '.join(FIELD_TYPES)}")
            values[key] = _coerce(key, value, str(path))
            sources[key] = GUARDIAN_CONFIG
    elif explicit:
        raise ConfigError(f"config file {path} does not exist", "create it or drop --config")
    for name in FIELD_TYPES:
        env_name = f"GUARDIAN_{name.upper()}"
        if env_name in environ and name != "state_dir":
            values[name] = _coerce(name, environ[env_name], env_name)
            sources[name] = ENV
    if environ.get("GUARDIAN_STATE_DIR"):
        values["state_dir"] = environ["GUARDIAN_STATE_DIR"]
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
            sources[name] = FLAG
    values["origin"] = store_origin(values, sources, str(path), environ)
    return _validate(Config(**values))


def store_origin(values: dict, sources: dict[str, str], guardian_file: str, environ: Mapping[str, str]) -> StoreOrigin:
    """Where store and compress come from; with no store given to guardian, contextd's own (``values``
    gets them as contextd decides them, guardian's own compress setting, when given, still wins)."""
    used = guardian_file if GUARDIAN_CONFIG in (sources.get("store"), sources.get("compress")) else ""
    if "store" in sources:
        return StoreOrigin(sources["store"], sources.get("compress", DETECTED), used)
    from guardian.contextd_config import contextd_store

    found = contextd_store(environ)
    values["store"] = found.path
    compress = sources.get("compress")
    if compress is None:
        values["compress"] = "true" if found.compress else "false"
        compress = found.compress_source
    return StoreOrigin(found.path_source, compress, used, found.config_file, found.warning)
