"""Exit codes and the one error base the CLI turns into a sentence and an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every row valid and every batch acknowledged (dry run: valid)
    PARTIAL = 1  # finished and every batch acknowledged, but rows were rejected (data to fix)
    USAGE = 2  # usage, configuration or input error found before anything was sent; nothing sent
    STOPPED = 3  # a guard: the server refused the key, --max-rejects exceeded or --min-rows not met
    INCOMPLETE = 4  # delivery incomplete: batches failed or were never sent; a rerun resumes (wins over 1)
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


class TooFewRows(T360Error):
    """--min-rows was not met: nothing is sent."""

    exit_code = ExitCode.STOPPED


class DeliveryIncomplete(T360Error):
    """Sending began but not every batch was acknowledged: an error struck after the first
    request (a full disk, an unwritable report, a dead thread). A rerun resumes."""

    exit_code = ExitCode.INCOMPLETE


class EndpointFailed(DeliveryIncomplete):
    """The endpoint cannot take the batches: a TLS certificate that fails verification, a host
    name that does not resolve, a 404 or 405, or too many failed batches in a row (SPEC 10)."""
