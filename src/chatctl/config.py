"""Where chatctl finds its database and who it acts as (SPEC 2.1).

Database URL precedence: ``--database-url`` > ``CHATCTL_DATABASE_URL`` > the
config file's profile > the embedded default (a SQLite file in the user data
dir).  The config file is TOML::

    # ~/.config/chatctl/config.toml  (chmod 600)
    default_profile = "prod"

    [profiles.prod]
    database_url = "postgresql://chatctl@db.internal/desk"
    read_url = "postgresql://chatctl@replica.internal/desk"
    actor = "alice"
    timezone = "Africa/Johannesburg"
    statement_timeout = "30s"
    pooler = "transaction"        # reached through PgBouncer in pool_mode = transaction
    sweep_lock = "auto"           # advisory | lease | auto
    audit_retention = "400d"      # what `audit prune` keeps when --before is not given

A URL needs no password: libpq's ``PGPASSFILE``/``~/.pgpass`` and
``PGSERVICE`` are honoured by the driver.  A config file that other users can
read is refused, because it may hold credentials.
"""

from __future__ import annotations

import getpass
import os
import re
import stat
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatctl.errors import ConfigError

APP_NAME = "chatctl"


@dataclass(frozen=True)
class Settings:
    database_url: str
    read_url: str | None
    actor: str
    timezone: str | None
    profile: str | None
    config_path: Path | None
    session: dict[str, str] = field(default_factory=dict)
    url_source: str = "default"
    # None: a direct connection; "transaction": a pooler (PgBouncer pool_mode =
    # transaction) hands each transaction to any server session, so nothing may
    # live in the session (settings, prepared statements, advisory locks).
    pooler: str | None = None
    sweep_lock: str = "auto"
    audit_retention: str | None = None
    # Where each setting came from (``chatctl config show``): a flag (--actor), a
    # variable (CHATCTL_ACTOR), "profile NAME in PATH", or "default"; keys are
    # the Settings fields, config, and the session keys that are set.
    sources: dict[str, str] = field(default_factory=dict)
    status: dict[str, object] = field(default_factory=dict)
    """The profile's ``chatctl status`` keys (STATUS_KEYS), as written; checked where they are used."""


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME)) / "config.toml"


def default_database_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME)) / "chatctl.db"


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container: still an operator
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"ops:{user}"


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)")
# ``?password=`` / ``&sslpassword=`` in a URL query ends at the next ``&``.
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&](?:ssl)?password=)(?P<pw>[^&\s]*)", re.IGNORECASE)
_PASSWORD_IN_DSN = re.compile(r"(?P<head>\b(?:ssl)?password\s*=\s*)(?!\*\*\*)(?P<pw>'[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide every password in ``text``: URL userinfo and ``password=`` DSN pairs."""
    text = _PASSWORD_IN_URL.sub(lambda m: f"{m['head']}***{m['tail']}", text)
    text = _PASSWORD_IN_QUERY.sub(lambda m: f"{m['head']}***", text)
    return _PASSWORD_IN_DSN.sub(lambda m: f"{m['head']}***", text)


def load_config_file(path: Path, *, explicit: bool) -> dict:
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    if os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"config file {path} is readable by other users (mode {stat.S_IMODE(mode):o})",
                hint=f"it may hold credentials: run `chmod 600 {path}`",
            )
    import tomllib  # only when there is a file to read: it compiles its regexes on import

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None


SESSION_KEYS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
DEFAULT_SWEEP_LEASE_SECONDS = 300
POOLERS = ("none", "transaction")
SWEEP_LOCKS = ("auto", "advisory", "lease")


def _choice(key: str, value, accepted: tuple[str, ...], where: str) -> str:
    text = str(value).strip().lower()
    if text not in accepted:
        raise ConfigError(f"{key} = '{value}' in {where} is not one of: {', '.join(accepted)}")
    return text


def _setting(key: str, chosen: dict, env, profile_name: str | None, config_path: Path) -> tuple[object, str]:
    """A setting from ``CHATCTL_<KEY>`` or the profile, with where it came from (None when unset)."""
    variable = f"CHATCTL_{key.upper()}"
    if env.get(variable):
        return env[variable], variable
    if key in chosen:
        return chosen[key], f"profile {profile_name} in {config_path}"
    return None, "default"


# ``chatctl status``: how often sweeps are expected to succeed, and the
# thresholds of ``status --check`` (each also a flag of that command).
STATUS_KEYS = ("sweep_expected_every", "check_waiting_warning", "check_waiting_critical",
               "check_unassigned_warning", "check_unassigned_critical", "check_sweep_warning",
               "check_sweep_critical")
PROFILE_KEYS = ("database_url", "read_url", "actor", "timezone", *SESSION_KEYS, "pooler", "sweep_lock",
                "audit_retention", *STATUS_KEYS)


def sweep_lease_seconds(environ: Mapping[str, str] | None = None) -> int:
    """How long a sweep's lease outlives a holder that stopped renewing it (``CHATCTL_SWEEP_LEASE_SECONDS``)."""
    env = os.environ if environ is None else environ
    try:
        return max(1, int(env.get("CHATCTL_SWEEP_LEASE_SECONDS", DEFAULT_SWEEP_LEASE_SECONDS)))
    except ValueError:
        return DEFAULT_SWEEP_LEASE_SECONDS


def sweep_lock_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """``CHATCTL_SWEEP_NO_LOCK=1``: sweeps run without their job lock (for tests of the claims alone)."""
    env = os.environ if environ is None else environ
    return env.get("CHATCTL_SWEEP_NO_LOCK") == "1"


TOP_LEVEL_KEYS = ("default_profile", "profiles")


def _unknown_key(key: str, known: tuple[str, ...], where: str) -> ConfigError:
    """D12: a typo must not quietly point chatctl at another database."""
    import difflib

    nearest = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean '{nearest[0]}'?" if nearest else f"known keys: {', '.join(known)}"
    return ConfigError(f"unknown key '{key}' in {where}", hint=hint)


def check_keys(data: Mapping[str, object], config_path: Path) -> None:
    """Refuse any key of the file, or of any of its profiles, that chatctl does not read (exit 3)."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _unknown_key(key, TOP_LEVEL_KEYS, f"config file {config_path}")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"config file {config_path}: [profiles] must be a table")
    for name, profile in profiles.items():
        if not isinstance(profile, dict):
            raise ConfigError(f"config file {config_path}: profile '{name}' must be a table")
        for key in profile:
            if key not in PROFILE_KEYS:
                raise _unknown_key(key, PROFILE_KEYS, f"profile '{name}' of config file {config_path}")


def resolve(
    *,
    database_url: str | None,
    read_url: str | None,
    profile: str | None,
    config: str | None,
    actor: str | None,
    tz: str | None,
    environ: Mapping[str, str] | None = None,
    from_environment: Collection[str] = (),
) -> Settings:
    """Apply the precedence rules of SPEC 2.1 and return the settings to use.

    ``from_environment`` names the options whose value Click read from their
    environment variable rather than from the command line
    (``ctx.get_parameter_source``), so the source of each is reported truly.
    """
    env = os.environ if environ is None else environ
    sources: dict[str, str] = {}

    def given(option: str, flag: str, variable: str, value):
        """A value of a global option or its variable, and which of the two it came from."""
        if value:
            sources[option] = variable if option in from_environment else flag
            return value
        if env.get(variable):
            sources[option] = variable
            return env[variable]
        return None

    explicit_config = given("config", "--config", "CHATCTL_CONFIG", config)
    config_path = Path(explicit_config).expanduser() if explicit_config else default_config_path()
    sources.setdefault("config", "default")
    data = load_config_file(config_path, explicit=bool(explicit_config))
    check_keys(data, config_path)

    profile_name = given("profile", "--profile", "CHATCTL_PROFILE", profile)
    if profile_name is None and data.get("default_profile"):
        profile_name, sources["profile"] = str(data["default_profile"]), f"default_profile in {config_path}"
    profiles = data.get("profiles", {})
    chosen: dict = {}
    in_profile = f"profile {profile_name} in {config_path}"
    if profile_name:
        if profile_name not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise ConfigError(
                f"profile '{profile_name}' is not in {config_path} (profiles: {known})"
            )
        chosen = profiles[profile_name]

    url = given("database_url", "--database-url", "CHATCTL_DATABASE_URL", database_url)
    if url is None and chosen.get("database_url"):
        url, sources["database_url"] = str(chosen["database_url"]), f"profile {profile_name}"
    elif url is None and profile_name:
        # A profile was chosen: the embedded file would be a silent stand-in for the desk it names.
        raise ConfigError(f"profile '{profile_name}' in {config_path} has no database_url",
                          hint="add database_url = \"postgresql://...\" to it, or give --database-url")
    elif url is None:
        url, sources["database_url"] = f"sqlite:///{default_database_path()}", "default"

    read = given("read_url", "--read-url", "CHATCTL_READ_DATABASE_URL", read_url)
    if read is None and chosen.get("read_url"):
        read, sources["read_url"] = str(chosen["read_url"]), in_profile
    acting = given("actor", "--actor", "CHATCTL_ACTOR", actor)
    if acting is None:
        acting, sources["actor"] = (str(chosen["actor"]), in_profile) if chosen.get("actor") \
            else (default_actor(), "default")
    zone = given("timezone", "--tz", "CHATCTL_TZ", tz)
    if zone is None:
        zone, sources["timezone"] = (str(chosen["timezone"]), in_profile) if chosen.get("timezone") \
            else (None, "the desk's timezone preference")

    session = {}
    for key in SESSION_KEYS:
        value, where = _setting(key, chosen, env, profile_name, config_path)
        if value is not None:
            session[key], sources[key] = str(value), where

    pooler, sources["pooler"] = _setting("pooler", chosen, env, profile_name, config_path)
    pooler = _choice("pooler", pooler, POOLERS, sources["pooler"]) if pooler is not None else "none"
    sweep_lock, sources["sweep_lock"] = _setting("sweep_lock", chosen, env, profile_name, config_path)
    sweep_lock = (_choice("sweep_lock", sweep_lock, SWEEP_LOCKS, sources["sweep_lock"]) if sweep_lock is not None
                  else "auto")
    retention, sources["audit_retention"] = _setting("audit_retention", chosen, env, profile_name, config_path)

    return Settings(
        database_url=url,
        read_url=read,
        actor=acting,
        timezone=zone,
        profile=profile_name,
        config_path=config_path if config_path.exists() else None,
        session=session,
        url_source=sources["database_url"],
        pooler=None if pooler == "none" else pooler,
        sweep_lock=sweep_lock,
        audit_retention=str(retention) if retention is not None else None,
        sources=sources,
        status={key: chosen[key] for key in STATUS_KEYS if key in chosen},
    )
