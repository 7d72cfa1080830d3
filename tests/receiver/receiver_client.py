"""Start, steer and read the loopback OTLP/HTTP test receiver (otlp_receiver.py).

    from receiver_client import OtlpReceiverProcess

    with OtlpReceiverProcess("/work/main/.venv/bin/python") as rx:
        rx.set_mode("status:503", count=2, retry_after="1")
        ... point the exporter at rx.endpoint (rx.traces_url is the full URL) ...
        spans = rx.wait_for_spans(10)
        assert not rx.duplicate_spans()

From another script, put this folder on sys.path first.  Stdlib only, so the
calling interpreter needs nothing installed; the receiver itself runs under
`python`, which must have opentelemetry-proto.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Callable

RECEIVER_SCRIPT = Path(__file__).with_name("otlp_receiver.py")


class ReceiverError(RuntimeError):
    pass


class OtlpReceiverProcess:
    """One receiver subprocess.  Not thread-safe: drive it from one thread."""

    def __init__(self, python: str = sys.executable, *, mode: str = "ok", count: int | None = None,
                 retry_after: str | None = None, delay_s: float | None = None,
                 lenient: bool = False, workdir: str | os.PathLike | None = None,
                 extra_args: tuple[str, ...] = (), startup_timeout_s: float = 60.0,
                 tls: tuple[str, str, str | None] | None = None):
        self.python = python
        self._args = ["--mode", mode]
        for flag, value in (("--count", count), ("--retry-after", retry_after),
                            ("--delay-s", delay_s)):
            if value is not None:
                self._args += [flag, str(value)]
        if lenient:
            self._args.append("--lenient")
        # (certificate, key, client CA or None): the trace port speaks HTTPS.
        self.tls = tls
        if tls is not None:
            cert, key, client_ca = tls
            self._args += ["--tls-cert", str(cert), "--tls-key", str(key)]
            if client_ca is not None:
                self._args += ["--tls-client-ca", str(client_ca)]
        self._args += list(extra_args)
        self._startup_timeout_s = startup_timeout_s
        self._own_workdir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self._proc: subprocess.Popen | None = None
        self._records_after_stop: list[dict] | None = None
        # Lines parsed so far and where they end: each read parses only what
        # was appended since (the kill test polls a file that grows to
        # millions of spans).
        self._parsed: list[dict] = []
        self._parsed_upto = 0
        self.port: int | None = None
        self.control_port: int | None = None

    # -- life ------------------------------------------------------------

    def start(self) -> "OtlpReceiverProcess":
        if self._proc is not None:
            raise ReceiverError("already started")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="otlp-receiver-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        port_file, control_file = self._workdir / "port", self._workdir / "control_port"
        for f in (port_file, control_file):
            f.unlink(missing_ok=True)
        self._records_after_stop = None
        cmd = [self.python, str(RECEIVER_SCRIPT), "--port-file", str(port_file),
               "--control-port-file", str(control_file), "--record", str(self.record_path),
               *self._args]
        with open(self.log_path, "ab") as log:
            # Output goes to a file, not a pipe nobody drains.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + self._startup_timeout_s
        while not (port_file.exists() and control_file.exists()):
            if self._proc.poll() is not None:
                raise ReceiverError(f"receiver exited with {self._proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self._kill()
                raise ReceiverError(f"receiver did not start in {self._startup_timeout_s}s:\n{self.log()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.control_port = int(control_file.read_text())
        return self

    def stop(self, timeout_s: float = 30.0) -> int:
        """Stop the receiver (graceful, then SIGTERM, then SIGKILL); returns its exit status.

        The records stay readable afterwards; a temporary workdir is removed.
        """
        if self._proc is None:
            raise ReceiverError("not started")
        if self._proc.poll() is None:
            try:
                self._control_request("POST", "/shutdown", {}, timeout_s=timeout_s)
            except (ReceiverError, OSError):
                pass
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self._kill()
        code = self._proc.returncode
        self._records_after_stop = self._read_records()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._proc = None
        return code

    def _kill(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "OtlpReceiverProcess":
        return self.start() if self._proc is None else self

    def __exit__(self, *exc):
        if self._proc is not None:
            self.stop()

    # -- where -----------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """Base URL, for OTEL_EXPORTER_OTLP_ENDPOINT-style configuration."""
        if self.tls is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def record_path(self) -> Path:
        return self._require_workdir() / "records.jsonl"

    @property
    def log_path(self) -> Path:
        return self._require_workdir() / "receiver.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, ReceiverError):
            return ""

    def _require_workdir(self) -> Path:
        if self._workdir is None:
            raise ReceiverError("no workdir (not started, or stopped with a temporary one)")
        return self._workdir

    # -- control ---------------------------------------------------------

    def set_mode(self, mode: str, *, count: int | None = None, retry_after: str | int | None = None,
                 delay_s: float | None = None, for_s: float | None = None) -> dict:
        """Switch behaviour; returns the receiver's new state.  See otlp_receiver.py for modes."""
        payload = {"mode": mode}
        for key, value in (("count", count), ("retry_after", retry_after),
                           ("delay_s", delay_s), ("for_s", for_s)):
            if value is not None:
                payload[key] = value
        return self._control_request("POST", "/control", payload)["state"]

    def reset_mode(self) -> dict:
        return self.set_mode("ok")

    def state(self) -> dict:
        return self._control_request("GET", "/control")["state"]

    def stats(self) -> dict:
        return self._control_request("GET", "/stats")

    def _control_request(self, method: str, path: str, payload: dict | None = None,
                         timeout_s: float = 30.0) -> dict:
        if self.control_port is None:
            raise ReceiverError("not started")
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.control_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise ReceiverError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from None

    # -- what arrived ----------------------------------------------------

    def records(self) -> list[dict]:
        """Every record line so far (accepted, rejected, refused), in order."""
        if self._records_after_stop is not None:
            return list(self._records_after_stop)
        return self._read_records()

    def _read_records(self) -> list[dict]:
        try:
            with open(self.record_path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self._parsed_upto:
                    self._parsed, self._parsed_upto = [], 0  # a new file
                f.seek(self._parsed_upto)
                data = f.read()
        except FileNotFoundError:
            return []
        # A line without its newline is still being written: leave it for the next read.
        complete = data.rfind(b"\n") + 1
        self._parsed.extend(json.loads(line) for line in data[:complete].split(b"\n") if line)
        self._parsed_upto += complete
        return list(self._parsed)

    def forget_records(self) -> None:
        """Drops the records read so far from this client's memory (the
        receiver's file keeps them): later calls see only what arrives
        after this. For long tests that share one receiver across many
        trials with large payloads."""
        self._read_records()
        self._parsed = []
        self._records_after_stop = None if self._records_after_stop is None else []

    def accepted_records(self) -> list[dict]:
        return [r for r in self.records() if "rejected" not in r and "refused" not in r]

    def rejected_records(self) -> list[dict]:
        return [r for r in self.records() if "rejected" in r]

    def refused_records(self) -> list[dict]:
        return [r for r in self.records() if "refused" in r]

    def raw_spans(self) -> list[dict]:
        """Every delivered span, in arrival order, duplicates included."""
        return [s for r in self.accepted_records() for s in r["spans"]]

    def spans(self) -> list[dict]:
        """Delivered spans, each (trace_id, span_id) once, at its first arrival."""
        seen, out = set(), []
        for s in self.raw_spans():
            key = (s["trace_id"], s["span_id"])
            if key not in seen:
                seen.add(key)
                out.append(s)
        return out

    def duplicate_spans(self) -> dict[tuple[str, str], int]:
        """(trace_id, span_id) -> times delivered, for those delivered more than once."""
        counts = Counter((s["trace_id"], s["span_id"]) for s in self.raw_spans())
        return {k: n for k, n in counts.items() if n > 1}

    def wait_for_spans(self, n: int, timeout_s: float = 60.0) -> list[dict]:
        """Wait until at least n distinct spans were delivered; returns them (de-duplicated)."""
        spans: list[dict] = []

        def enough(rx: "OtlpReceiverProcess") -> bool:
            spans[:] = rx.spans()
            return len(spans) >= n

        self.wait_for(enough, timeout_s, what=f"{n} distinct spans")
        return spans

    def wait_for(self, predicate: Callable[["OtlpReceiverProcess"], object],
                 timeout_s: float = 60.0, what: str = "condition"):
        """Poll predicate(self) until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout_s}s for {what}; "
                                   f"have {len(self.spans())} distinct spans, stats {self._stats_or_none()}")
            time.sleep(0.02)

    def _stats_or_none(self):
        try:
            return self.stats()
        except (ReceiverError, OSError):
            return None
