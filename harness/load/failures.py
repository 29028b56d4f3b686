"""The message of a failed request: its error kind, then what a person needs to act on.

`timeout: no response within 10s to POST /v2/models/m/infer (load.request_timeout)`, `http_404:
POST /v2/models/m/infer -> 404 Not Found: <the start of the server's answer>`. Users call these
builders only once a request has failed, so a successful request pays nothing; the recorder
keeps the first message of each kind per second, and the reports show it next to the count.
"""

from http import HTTPStatus

BODY_CHARS = 200  # of a server's answer quoted in a message
MESSAGE_CHARS = 400  # of a whole message, kept per error kind and second
TIMEOUT_SETTING = "load.request_timeout"

# What an exception that carries no text means, most specific first (ConnectionError's family).
_MEANINGS: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused: nothing listens at that address (the server is down?)"),
    (ConnectionResetError, "the server reset the connection"),
    (ConnectionAbortedError, "the connection was aborted"),
    (BrokenPipeError, "the server closed the connection while the request was being sent"),
    (TimeoutError, f"no response within the request timeout ({TIMEOUT_SETTING})"),
    (EOFError, "the server closed the connection before answering"),
)


def failure_message(kind: str, detail: str) -> str:
    """`kind: detail`; an empty detail (a user class that gave none) says what is known instead."""
    return f"{kind}: {detail.strip() or _no_detail(kind)}"[:MESSAGE_CHARS]


def _no_detail(kind: str) -> str:
    if kind == "timeout":
        return f"no response within the request timeout ({TIMEOUT_SETTING})"
    status = http_status_of(kind)
    if status is not None:
        return f"HTTP {status} {reason_phrase(status)}".rstrip() + "; the user class quoted no answer"
    return "the user class recorded this failure without a message"


def http_status_of(kind: str) -> int | None:
    """404 for `http_404`; None for kinds that are not an HTTP status."""
    code = kind.removeprefix("http_")
    return int(code) if code != kind and code.isdigit() else None


def reason_phrase(status: int) -> str:
    """`Not Found` for 404; "" for a status HTTP does not name (e.g. 599)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def quoted(body: bytes | str) -> str:
    """The start of a server's answer on one line, or `(empty body)`."""
    text = body[: BODY_CHARS * 4].decode(errors="replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())[:BODY_CHARS]
    return text or "(empty body)"


def timeout_detail(timeout_s: float, request: str = "") -> str:
    """`no response within 10s to POST /path (load.request_timeout)`."""
    to = f" to {request}" if request else ""
    return f"no response within {timeout_s:g}s{to} ({TIMEOUT_SETTING})"


def http_detail(request: str, status: int, body: bytes | str, reason: str | None = None) -> str:
    """`POST /v2/models/m/infer -> 404 Not Found: <the start of the answer>`."""
    phrase = (reason or "").strip() or reason_phrase(status)
    return f"{request} -> {f'{status} {phrase}'.rstrip()}: {quoted(body)}"


def wrong_answer_detail(request: str, why: str, body: bytes | str) -> str:
    """A 200 that is not the right answer: `POST /p -> 200 OK, but <why>: <the answer>`."""
    return f"{request} -> 200 OK, but {why}: {quoted(body)}"


def exception_detail(exc: BaseException, request: str = "") -> str:
    """What an exception says or, when it says nothing, what its class means; after the request."""
    text = " ".join(str(exc).split())
    if not text:
        text = next((meaning for cls, meaning in _MEANINGS if isinstance(exc, cls)),
                    f"{type(exc).__name__} without a message")
    return f"{request}: {text}" if request else text


def grpc_detail(call: str, status: str, message: str) -> str:
    """`ModelInfer m -> UNAVAILABLE: <the server's message>`."""
    return f"{call} -> {status}: {' '.join(message.split())[:BODY_CHARS] or '(no message)'}"
