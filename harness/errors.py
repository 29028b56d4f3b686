"""Exceptions that carry an exit code and a one-line message for the user."""

from harness.exitcodes import ExitCode


class HarnessError(Exception):
    """An error the CLI prints as one line, then exits with `code`."""

    code: ExitCode = ExitCode.INTERNAL_ERROR


class UsageError(HarnessError):
    """Bad input: a scenario file, a flag, a path."""

    code = ExitCode.USAGE_ERROR


class StackFailed(HarnessError):
    """The system under test failed to start or become ready."""

    code = ExitCode.STACK_FAILED
