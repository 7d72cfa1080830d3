"""A tiny loopback HTTP proxy for tests: forwards `POST http://...` requests
(an http_proxy's absolute-form request) and tunnels `CONNECT host:port`
(an https_proxy's), and records what it was asked, so that a test can tell
whether a request went through it and with which credentials."""

import socket
import socketserver
import threading


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.server.seen.append({"method": method, "target": target, "headers": headers})
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(upstream, rest)
            return
        # An absolute-form request: sent on to its host in origin form,
        # without the proxy's own headers, then the answer relayed back.
        authority, _, path = target.split("://", 1)[1].partition("/")
        host, _, port = authority.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port or 80)), timeout=10)
        kept = [l for l in lines[1:]
                if not l.lower().startswith(("proxy-authorization:", "proxy-connection:", "connection:"))]
        first = f"{method} /{path} HTTP/1.1"
        upstream.sendall(("\r\n".join([first, *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1"))
        self._relay(upstream, rest)

    def _relay(self, upstream, first):
        if first:
            upstream.sendall(first)
        client = self.request

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(10)
        upstream.close()


class LoopbackProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
