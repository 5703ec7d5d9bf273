"""Typed errors that carry their exit code.

Domain code raises these; the CLI edge (``chatctl.cli``) turns them into one
line on stderr and the documented exit code (SPEC 2.4).  Nothing else decides
exit codes.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    PARTIAL = 1
    USAGE = 2
    DATABASE = 3
    LOCKED = 4
    SAFETY = 5
    INTERRUPTED = 130  # 128 + SIGINT
    TERMINATED = 143  # 128 + SIGTERM


class ChatctlError(Exception):
    """Base of every expected failure; ``exit_code`` is what the process returns."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(ChatctlError):
    """Bad input: an id, a duration, an expression, a preference value, a file."""

    exit_code = ExitCode.USAGE


class ConfigError(ChatctlError):
    """The configuration cannot be used (bad URL, unreadable or unsafe file)."""

    exit_code = ExitCode.DATABASE


class DatabaseError(ChatctlError):
    """The database is unreachable, or its schema is missing or not at head."""

    exit_code = ExitCode.DATABASE


class LockedError(ChatctlError):
    """Another sweep holds the lock for this job and shard."""

    exit_code = ExitCode.LOCKED


class SafetyLimitError(ChatctlError):
    """A safety limit (``--max-changes``) stopped the run; nothing changed."""

    exit_code = ExitCode.SAFETY


class RuleRefused(ChatctlError):
    """A desk rule refuses a single-item action (e.g. R8, R11, R14)."""

    exit_code = ExitCode.PARTIAL


class NotFound(ChatctlError):
    """A single named item does not exist."""

    exit_code = ExitCode.PARTIAL


class CheckUnknown(ChatctlError):
    """``status --check`` could not tell: a bad command line, configuration or database (D16 UNKNOWN).

    Monitoring reads standard output, so the error boundary prints ``UNKNOWN: ...`` there too.
    """

    exit_code = ExitCode.DATABASE  # 3, the plugin convention's UNKNOWN


class Interrupted(ChatctlError):
    """SIGINT or SIGTERM stopped a mutation or a sweep between batches (SPEC D11).

    The exit code is the shell's for that signal: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__("interrupted" if signum == signal.SIGINT else "terminated")
        self.signum = signum
        self.exit_code = 128 + signum
