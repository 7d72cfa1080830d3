"""At what depth does Python's protobuf refuse a request spanguard sends?

Reads the bodies `cargo test --release --test value_depth_bodies` writes
(target/value-depth/{map,array}-<depth>.pb: one span, one attribute nested
that deep) and parses each with PyPI's opentelemetry-proto, as a Python
receiver (Phoenix, a self-hosted OTLP endpoint) does. Prints, for maps and
for arrays, the deepest value parsed and the first refused, with the
protobuf implementation in use (upb's default nesting limit is 100).

    python tests/python/value_depth_limit.py [DIR]
"""

import os
import sys

from google.protobuf import __version__ as pb_version
from google.protobuf.internal import api_implementation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target", "value-depth")
    print(f"protobuf {pb_version} ({api_implementation.Type()})")
    for kind in ("map", "array"):
        parsed, refused = 0, None
        depth = 1
        while os.path.exists(os.path.join(folder, f"{kind}-{depth}.pb")):
            with open(os.path.join(folder, f"{kind}-{depth}.pb"), "rb") as f:
                body = f.read()
            try:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                span = request.resource_spans[0].scope_spans[0].spans[0]
                assert span.name == "nested", span.name
                parsed = depth
            except Exception as e:  # DecodeError, or RecursionError in pure Python
                if refused is None:
                    refused = (depth, f"{type(e).__name__}: {e}")
            depth += 1
        if depth == 1:
            print(f"no {kind}-*.pb in {folder}: run the cargo test first")
            return 2
        print(f"{kind}: deepest parsed {parsed}, first refused {refused}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
