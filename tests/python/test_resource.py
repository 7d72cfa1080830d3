"""The resource tells processes apart: two runs of one service write sink
files that a backend (and a Collector's file receiver, which fingerprints a
file by its first kilobyte) can tell apart, each naming its own instance,
process and host; OTEL_RESOURCE_ATTRIBUTES overrides any of it. Judged by
PyPI's opentelemetry-proto decoding each sink line."""

import os
import platform
import re
import socket
import subprocess
from pathlib import Path

import pytest

from otlp_receiver import JSON, decode_request, key_values

REPO = Path(__file__).resolve().parents[2]
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
# A realistic deployment's resource, long enough that the first kilobyte of
# a sink file holds nothing but the resource when nothing else tells runs
# apart.
DEPLOYMENT = ",".join(f"k8s.label.{name}=value-of-{name}-" + "x" * 40
                      for name in ("app", "team", "tier", "zone", "track", "owner", "cost", "rev",
                                   "env", "mesh", "shard", "ring", "lane", "flow", "pool"))


def demo() -> Path:
    path = Path(os.environ.get("SPANGUARD_DEMO", REPO / "build" / "examples" / "agent_demo"))
    if not path.exists():
        pytest.fail(f"{path} is missing: run the tests through `make test`")
    return path


def run_demo(sink: Path, **extra) -> int:
    env = dict(os.environ, SPANGUARD_SINK_DIR=str(sink), SPANGUARD_SPOOL_DIR=str(sink / "spool"),
               OTEL_SERVICE_NAME="same-service", OTEL_RESOURCE_ATTRIBUTES=DEPLOYMENT)
    env.update(extra)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    child = subprocess.Popen([str(demo())], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return child.pid


def resources_of(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        req, _ = decode_request(line.encode(), JSON, None, strict=True)
        out += [key_values(rs.resource.attributes) for rs in req.resource_spans]
    return out


def test_two_runs_of_one_service_are_told_apart(tmp_path):
    sink = tmp_path / "sink"
    pids = [run_demo(sink), run_demo(sink)]
    files = sorted(sink.glob("*.jsonl"), key=lambda p: pids.index(int(p.stem.rsplit("-", 1)[1])))
    assert len(files) == 2, files
    instance_ids = []
    for path, pid in zip(files, pids):
        resources = resources_of(path)
        assert resources
        for r in resources:
            # Given in code, it wins over OTEL_SERVICE_NAME: the resource SDK
            # merges the environment's resource as the secondary one.
            assert r["service.name"] == "demo-agent"
            assert UUID4.match(r["service.instance.id"]), r["service.instance.id"]
            assert r["process.pid"] == pid  # an int, as the conventions type it
            assert r["host.name"] == socket.gethostname()
            assert r["host.arch"] == ARCH
            assert r["os.type"] == "linux"
            assert r["process.executable.name"] == "agent_demo"
            assert r["process.executable.path"] == str(demo().resolve())
            assert r["k8s.label.app"].startswith("value-of-app-")
            assert "process.command_args" not in r  # arguments may hold secrets
        assert len({r["service.instance.id"] for r in resources}) == 1
        instance_ids.append(resources[0]["service.instance.id"])
        # The instance id is near the start of every line, where a file
        # receiver's fingerprint sees it.
        for line in path.read_text().splitlines():
            assert 0 < line.find(instance_ids[-1]) < 200
    assert instance_ids[0] != instance_ids[1]
    heads = [p.read_bytes()[:1024] for p in files]
    assert heads[0] != heads[1], "the first kilobytes of the two runs' files are the same"


def test_a_resource_over_half_a_sink_line_is_written_cut_not_lost(tmp_path):
    # 100 attributes of 1 KiB under sink lines of at most 64 KiB: every
    # span was lost ("the resource leaves no room"). They are written with
    # service.name and the attributes that fit, in order, the rest counted
    # in Resource.dropped_attributes_count.
    sink = tmp_path / "sink"
    big = ",".join(f"big.{i}={'v' * 1024}" for i in range(100))
    run_demo(sink, OTEL_RESOURCE_ATTRIBUTES=big, SPANGUARD_SINK_MAX_LINE_BYTES="65536")
    files = list(sink.glob("*.jsonl"))
    assert len(files) == 1, files
    spans = 0
    for line in files[0].read_text().splitlines():
        assert len(line.encode()) <= 65536
        req, _ = decode_request(line.encode(), JSON, None, strict=True)
        for rs in req.resource_spans:
            r = key_values(rs.resource.attributes)
            assert r["service.name"] == "demo-agent"
            kept = [k for k in r if k.startswith("big.")]
            assert kept == [f"big.{i}" for i in range(len(kept))], "the first ones, in order"
            assert rs.resource.dropped_attributes_count > 0
            assert len(kept) + rs.resource.dropped_attributes_count == 100
            spans += sum(len(ss.spans) for ss in rs.scope_spans)
    assert spans > 0


def test_every_detected_attribute_can_be_overridden(tmp_path):
    sink = tmp_path / "sink"
    run_demo(sink, OTEL_RESOURCE_ATTRIBUTES="service.instance.id=blue-7,host.name=build-box,os.type=plan9")
    (path,) = sink.glob("*.jsonl")
    for r in resources_of(path):
        assert r["service.instance.id"] == "blue-7"
        assert r["host.name"] == "build-box"
        assert r["os.type"] == "plan9"
        assert r["host.arch"] == ARCH
