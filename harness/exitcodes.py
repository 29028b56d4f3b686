"""The harness's exit codes: one documented set, shared by the CLI, pytest and CI."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `harness run` (and friends) return to the shell.

    0 and 1 are verdicts; 2 and above mean no verdict could be reached.
    """

    PASS = 0  # every SLO held (or, with `expect: reproduced`, the failure was reproduced)
    SLO_FAILED = 1  # at least one SLO failed (or the failure did not reproduce)
    USAGE_ERROR = 2  # bad command line or scenario file; nothing was started
    STACK_FAILED = 3  # the system under test did not start or never became ready
    INTERNAL_ERROR = 4  # a bug or an unexpected error in the harness itself
    INTERRUPTED = 5  # stopped early by Ctrl-C or SIGTERM; faults restored, partial report written
