"""A streaming OpenAI-compatible chat server whose timing is known: TTFT and ITL it sleeps, no model.

    python bench/fake_openai.py --port 8123 --ttft-ms 20 --itl-ms 5 --jitter-ms 10

Every request to /v1/chat/completions streams, after `--ttft-ms` (+- `--jitter-ms`), the role
chunk and the first word, then one word every `--itl-ms`, up to `max_tokens` (or
`max_completion_tokens`), then a usage chunk and `data: [DONE]` (what vLLM sends). /health and
/v1/models answer too. asyncio and the standard library only, HTTP/1.1 keep-alive with chunked
bodies: a server this light leaves the CPUs to the clients, so what a tool reports beyond the
sleeps is the tool's own doing
(bench/vllm_peer.py `--server fake`). It listens on 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import random
import time
from typing import Any

WORD = "w0"


class Server:
    def __init__(self, ttft_s: float, itl_s: float, jitter_s: float, seed: int = 0):
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                pairs = (line.split(":", 1) for line in lines[1:] if ":" in line)
                headers = {key.strip().lower(): value.strip() for key, value in pairs}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = json.loads(body or b"{}") if method == "POST" else {}
                if path.startswith("/v1/chat/completions") and request.get("stream"):
                    await self.stream(request, writer)
                elif path.startswith("/v1/chat/completions"):  # unstreamed: the whole answer at once
                    await asyncio.sleep(self.ttft_s + (_tokens(request) - 1) * self.itl_s)
                    self.plain(writer, {"choices": [{"index": 0, "finish_reason": "length", "message": {
                        "role": "assistant", "content": " ".join([WORD] * _tokens(request))}}],
                        "usage": _usage(request)})
                elif path.startswith("/v1/models"):
                    self.plain(writer, {"object": "list", "data": [{"id": "tiny-llama", "object": "model"}]})
                else:
                    self.plain(writer, {})
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def plain(writer: asyncio.StreamWriter, answer: object) -> None:
        data = json.dumps(answer).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(data), data))

    async def stream(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        started = time.monotonic()
        tokens = _tokens(request)
        # A TTFT drawn uniformly from ttft +- jitter: closed-loop users with identical timings
        # would otherwise fall into step with anything periodic in the client and hide it.
        ttft_s = self.ttft_s + self.rng.uniform(-self.jitter_s, self.jitter_s)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")

        def event(choices: list[object], **extra: object) -> None:
            data = json.dumps({"id": "fake", "object": "chat.completion.chunk", "model": "tiny-llama",
                               "choices": choices, **extra}).encode()
            payload = b"data: " + data + b"\n\n"
            writer.write(b"%x\r\n%s\r\n" % (len(payload), payload))

        for index in range(tokens):
            # Sleep to the token's planned time, not by a fixed step: lateness does not add up.
            due = started + ttft_s + index * self.itl_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if index == 0:
                event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            finish = "length" if index == tokens - 1 else None
            event([{"index": 0, "delta": {"content": f" {WORD}"}, "finish_reason": finish}])
            await writer.drain()
        event([], usage=_usage(request))
        done = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))


def _tokens(request: dict[str, Any]) -> int:
    return int(request.get("max_completion_tokens") or request.get("max_tokens") or 16)


def _usage(request: dict[str, Any]) -> dict[str, int]:
    """One token per word of the prompt, as the tiny tokenizer counts (its chat template adds none)."""
    prompt = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
    tokens = _tokens(request)
    return {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}


async def serve(port: int, ttft_s: float, itl_s: float, jitter_s: float) -> None:
    server = await asyncio.start_server(Server(ttft_s, itl_s, jitter_s).handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--itl-ms", type=float, default=5.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="TTFT is uniform in ttft +- this")
    args = parser.parse_args()
    if not 0 <= args.jitter_ms <= args.ttft_ms:
        parser.error("--jitter-ms must be between 0 and --ttft-ms")
    asyncio.run(serve(args.port, args.ttft_ms / 1000, args.itl_ms / 1000, args.jitter_ms / 1000))


if __name__ == "__main__":
    main()
