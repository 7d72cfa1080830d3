"""A loopback OpenAI-compatible server for the bridge tests: chat
completions with and without streaming, and a tool call. Standard library
only.

    with FakeOpenAI() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")

What it answers is decided by the request: tools offered and no tool
result in the messages yet: a call of the first tool with `{"city":
"Lisbon"}`; otherwise an assistant message that repeats the last user
message (`"echo: ..."`). A last user message containing `HOLD` is held
unanswered until the server stops (the kill tests kill the client
meanwhile); `server.held` is set when such a request has arrived.

Run as a program, it prints `PORT <n>` and serves until killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38}


def _answer(body: dict) -> dict:
    """The assistant message for a request: a tool call, or an echo."""
    messages = body.get("messages", [])
    tools = body.get("tools") or []
    if tools and not any(m.get("role") == "tool" for m in messages):
        name = tools[0]["function"]["name"]
        return {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_weather_1", "type": "function",
            "function": {"name": name, "arguments": json.dumps({"city": "Lisbon"})}}]}
    last = next((m for m in reversed(messages) if m.get("role") in ("user", "tool")), {})
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return {"role": "assistant", "content": f"echo: {content}"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        last_user = next((m.get("content") for m in reversed(body.get("messages", []))
                          if m.get("role") == "user"), "")
        if isinstance(last_user, str) and "HOLD" in last_user:
            self.server.held.set()
            self.server.release.wait()
            return
        message = _answer(body)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        created = int(time.time())
        if body.get("stream"):
            self._stream(message, finish, created, body)
        else:
            self._json(200, {"id": "chatcmpl-fake-1", "object": "chat.completion", "created": created,
                             "model": MODEL, "system_fingerprint": "fp_fake",
                             "choices": [{"index": 0, "message": message, "finish_reason": finish,
                                          "logprobs": None}],
                             "usage": USAGE})

    def _json(self, status: int, doc: dict):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, message: dict, finish: str, created: int, body: dict):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(delta: dict, finish_reason=None, usage=None):
            doc = {"id": "chatcmpl-fake-2", "object": "chat.completion.chunk", "created": created,
                   "model": MODEL, "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
            if usage is not None:
                doc["choices"] = []
                doc["usage"] = usage
            data = f"data: {json.dumps(doc)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        chunk({"role": "assistant", "content": ""})
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                   "function": {"name": call["function"]["name"], "arguments": ""}}]})
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]})
        else:
            words = message["content"].split(" ")
            for i, word in enumerate(words):
                chunk({"content": word if i == 0 else " " + word})
        chunk({}, finish_reason=finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk(None, usage=USAGE)
        done = b"data: [DONE]\n\n"
        self.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")


class FakeOpenAI:
    """The server on a loopback port, in a thread."""

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.requests = []
        self._server.held = threading.Event()
        self._server.release = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list:
        return self._server.requests

    @property
    def held(self) -> threading.Event:
        return self._server.held

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self):
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    server = FakeOpenAI().start()
    print(f"PORT {server._server.server_address[1]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
        sys.exit(0)
