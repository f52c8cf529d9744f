"""Exit codes and the one error base the CLI turns into a sentence and an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every row valid and every batch acknowledged (dry run: valid)
    PARTIAL = 1  # finished, but rows were rejected or batches failed
    USAGE = 2  # usage or configuration error; nothing sent
    STOPPED = 3  # the server refused the key, or --max-rejects was exceeded
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class T360Error(Exception):
    """An error the user can act on: what went wrong, where, and what to do."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class UsageError(T360Error):
    """Bad command line or configuration."""


class InputError(T360Error):
    """An input file cannot be read (missing, wrong format, bad encoding...)."""


class MappingError(T360Error):
    """The mapping file is wrong; raised before any row is read."""


class LogError(T360Error):
    """The progress log cannot be used (changed inputs, locked, unreadable)."""


class AuthRefused(T360Error):
    """The server answered 401 or 403: nothing more is sent."""

    exit_code = ExitCode.STOPPED


class TooManyRejects(T360Error):
    """--max-rejects was exceeded: nothing is sent."""

    exit_code = ExitCode.STOPPED
