"""The largest values a scenario may ask for: past these, a number is a typo, not a plan.

Every load loop must be bounded and every run must be one a machine can finish, so each field has
an upper bound well above anything measured here and far below what a slip of the keyboard gives
(`duration: 100000h`, `rate: 1e9`). README's "Limits" table lists them; `harness soak --for`
is how a run gets longer than one load.
"""

MAX_DURATION_S = 30 * 86400  # any duration at all: a month
MAX_LOAD_S = 86400  # one run's load (a soak repeats it)
MAX_TIMEOUT_S = 3600  # startup, liveness, backoffs: an hour
MAX_REQUEST_TIMEOUT_S = 600
MAX_STOP_TIMEOUT_S = 600
MAX_USERS = 10_000  # Locust users in one run (this machine measured ~9k req/s with 32 connections)
MAX_RATE = 100_000.0  # open model arrivals per second
MAX_SPAWN_RATE = 10_000.0  # users started per second
MAX_STAGES = 1_000
MAX_FAULTS = 1_000  # entries under `faults:`
MAX_FIRINGS = 10_000  # `count` of one entry
MAX_SLOS = 500
MAX_LOG_PATTERNS = 100
MAX_PATTERN_CHARS = 1_000
MAX_NAME_CHARS = 100  # scenario, fault and SLO names: they become folder names and JUnit names
MAX_TEXT_CHARS = 20_000  # descriptions
MAX_SEED = 2**63 - 1
