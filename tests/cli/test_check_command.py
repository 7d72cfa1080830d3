"""spanguard check says what a tracer started in this environment does with
its spans, and how the backend answers one empty export request sent the
library's way: a 200 is OK, a 404 on /v1/trace names the path to use, a
closed port says the connection was refused, a 401 names the header sent
and never its value, an invalid variable is named with the library's reason,
and without an endpoint it names the local sink and sends nothing."""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import trustme

from loopback_proxy import LoopbackProxy
from receiver_client import OtlpReceiverProcess

from conftest import REPO


def clean_env(tmp_path, **variables):
    """This process's environment without any OTEL_* or SPANGUARD_*
    variable (the runner's own must not change what is checked), its
    state under `tmp_path`, and `variables` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANGUARD_", "_SPANGUARD_"))}
    env["HOME"] = str(tmp_path / "home")
    env.pop("XDG_STATE_HOME", None)
    for proxy in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                  "no_proxy", "NO_PROXY"):
        env.pop(proxy, None)
    env.update(variables)
    return env


def check(cli, env, *args):
    return subprocess.run([str(cli), "check", *args], capture_output=True, text=True, timeout=60, env=env)


_HELD_PORTS = []  # sockets that hold closed_port()'s ports until the tests end


def closed_port():
    """A loopback port nothing listens on: bound, never listened on, and kept
    bound, so that no other test's server is given it (make test runs two
    lanes at once) and answers what was meant to find the backend down."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(s)
    return s.getsockname()[1]


def test_a_backend_that_takes_the_request_is_ok(cli, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                        OTEL_EXPORTER_OTLP_HEADERS="authorization=secret")
        run = check(cli, env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"OK: {rx.traces_url} answered 200 in " in run.stdout, run.stdout
        # Where spans go, from which variable, the /v1/traces rule applied.
        assert f"spans go to       OTLP/HTTP {rx.traces_url} (OTEL_EXPORTER_OTLP_ENDPOINT" in run.stdout
        # One request, empty (no span), that carried the configured header.
        records = rx.records()
        assert len(records) == 1, records
        assert records[0]["spans"] == [] and records[0]["content_type"] == "application/x-protobuf"
        headers = {k.lower(): v for k, v in records[0]["headers"].items()}
        assert headers.get("authorization") == "secret", headers


def test_gzip_and_json_go_as_a_tracer_sends_them(cli, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=rx.traces_url,
                        OTEL_EXPORTER_OTLP_PROTOCOL="http/json", OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
        run = check(cli, env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "format            JSON (http/json)" in run.stdout
        assert "compression       gzip" in run.stdout
        [record] = rx.records()
        assert record["spans"] == [], record
        assert record["content_type"] == "application/json" and record["content_encoding"] == "gzip", record


def test_a_404_on_v1_trace_names_the_path(cli, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{rx.endpoint}/v1/trace")
        run = check(cli, env)
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"FAILED: {rx.endpoint}/v1/trace " in run.stdout, run.stdout
        assert "HTTP 404" in run.stdout
        assert "the OTLP/HTTP traces path is /v1/traces" in run.stdout, run.stdout
        # It got there: the receiver turned it away at that path.
        assert [r["path"] for r in rx.rejected_records()] == ["/v1/trace"]


def test_endpoint_says_how_its_url_was_taken_and_a_404_is_worded_for_the_flag(cli, tmp_path):
    # `check --endpoint http://h:4318/v1/trace` (a typo of /v1/traces)
    # probed /v1/trace/v1/traces without saying why, and its hint told of
    # OTEL_EXPORTER_OTLP_ENDPOINT against _TRACES_ENDPOINT, variables the
    # user never set. The URL given is said to be taken as a base, and the
    # hint is the flag's, with the URLs to give.
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        env = clean_env(tmp_path, SPANGUARD_SINK_DIR=str(tmp_path / "sink"))
        run = check(cli, env, "--endpoint", f"{rx.endpoint}/v1/trace")
        assert run.returncode == 1, run.stdout + run.stderr
        assert (f"  --endpoint        {rx.endpoint}/v1/trace/v1/traces (--endpoint {rx.endpoint}/v1/trace, "
                "a base URL, with /v1/traces added) is checked below") in run.stdout, run.stdout
        assert f"FAILED: {rx.endpoint}/v1/trace/v1/traces " in run.stdout, run.stdout
        assert (f"(--endpoint takes a base URL and adds /v1/traces to it, so {rx.endpoint}/v1/trace was taken "
                f"as a base; the OTLP/HTTP traces path is /v1/traces: give --endpoint {rx.endpoint} or "
                f"--endpoint {rx.endpoint}/v1/traces)\n") in run.stdout, run.stdout
        assert "OTEL_EXPORTER_OTLP" not in run.stdout.split("FAILED:")[1], run.stdout
        # A whole URL with a wrong path before /v1/traces: used as it is.
        run = check(cli, env, "--endpoint", f"{rx.endpoint}/otlp/v1/traces")
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"  --endpoint        {rx.endpoint}/otlp/v1/traces is checked below" in run.stdout, run.stdout
        assert (f"(nothing takes traces at this URL: --endpoint {rx.endpoint}/otlp/v1/traces ends in /v1/traces, "
                "so it is used as it is: check the host, the port (OTLP/HTTP's is 4318) and any path before "
                "/v1/traces)\n") in run.stdout, run.stdout
        assert [r["path"] for r in rx.rejected_records()] == ["/v1/trace/v1/traces", "/otlp/v1/traces"]
    # Set in the variable, the hint stays the variable's.
    with OtlpReceiverProcess(workdir=tmp_path / "rx2") as rx:
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=f"{rx.endpoint}/v1/trace"))
        assert run.returncode == 1, run.stdout + run.stderr
        assert "OTEL_EXPORTER_OTLP_ENDPOINT is a base URL" in run.stdout, run.stdout


def test_a_closed_port_is_a_refused_connection(cli, tmp_path):
    port = closed_port()
    run = check(cli, clean_env(tmp_path), "--endpoint", f"http://127.0.0.1:{port}")
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"FAILED: http://127.0.0.1:{port}/v1/traces" in run.stdout, run.stdout
    assert "connection refused" in run.stdout
    assert "what to do: nothing takes connections at that host and port" in run.stdout


def test_header_names_are_said_and_their_values_never(cli, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="status:401") as rx:
        env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                        OTEL_EXPORTER_OTLP_HEADERS="authorization=secret")
        run = check(cli, env)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "headers           authorization (values not shown)" in run.stdout, run.stdout
        assert "HTTP 401" in run.stdout
        assert "refused the credentials sent (headers: authorization)" in run.stdout, run.stdout
        assert "secret" not in run.stdout + run.stderr


def test_a_401_under_endpoint_says_how_to_give_headers_to_the_check(cli, tmp_path):
    # `check --endpoint URL` turned away for its credentials told the user
    # to set OTEL_EXPORTER_OTLP_HEADERS, for a check whose endpoint they
    # gave by flag: the check now takes --headers (OTEL_EXPORTER_OTLP_HEADERS'
    # format) and its 401 says so, naming where the headers sent came from.
    with OtlpReceiverProcess(workdir=tmp_path / "rx", mode="status:401") as rx:
        env = clean_env(tmp_path)
        run = check(cli, env, "--endpoint", rx.endpoint)
        assert run.returncode == 1, run.stdout + run.stderr
        failed = run.stdout.split("FAILED:")[1]
        assert "HTTP 401" in failed, run.stdout
        assert ("(the backend wants credentials and none were sent: give the header it expects, e.g. its "
                "API key, with --headers (name=value,..., as OTEL_EXPORTER_OTLP_HEADERS takes them, a space "
                "as %20: --headers Authorization=Bearer%20<key>))\n") in failed, run.stdout
        run = check(cli, env, "--endpoint", rx.endpoint, "--headers", "x-api-key=s3cret%20key,x-team=a")
        assert run.returncode == 1, run.stdout + run.stderr
        assert "headers           x-api-key, x-team (values not shown)" in run.stdout, run.stdout
        assert ("the backend refused the credentials sent (headers: x-api-key, x-team, from --headers): "
                "check the key and the header name the backend expects, and give them with --headers") \
            in run.stdout, run.stdout
        assert "s3cret" not in run.stdout + run.stderr
        env_headers = clean_env(tmp_path, OTEL_EXPORTER_OTLP_HEADERS="authorization=secret")
        run = check(cli, env_headers, "--endpoint", rx.endpoint)
        assert "(headers: authorization, from OTEL_EXPORTER_OTLP_HEADERS)" in run.stdout, run.stdout
        # The headers given went with the request, decoded as the variable's are.
        sent = [r["headers"] for r in rx.records() if r.get("path") == "/v1/traces"]
        assert sent[1].get("x-api-key") == "s3cret key", sent
        assert sent[1].get("x-team") == "a", sent
        assert "x-api-key" not in sent[0] and sent[2].get("authorization") == "secret", sent
    # Given with no endpoint to check, they would go nowhere: refused as a
    # usage error that says what to add (taken and unused, a check run to
    # try an API key passed having sent it nowhere).
    for env in [clean_env(tmp_path, OTEL_EXPORTER_OTLP_HEADERS="authorization=secret"),
                clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="discard:")]:
        run = check(cli, env, "--headers", "x-key=1")
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stdout == "", run.stdout
        assert run.stderr == ("spanguard check: --headers go with the request sent to an endpoint, and none is "
                              "set here: add --endpoint URL (the backend's OTLP/HTTP URL) to send them there "
                              "(spanguard check --help)\n"), run.stderr
    # With the environment's endpoint, they go to it.
    with OtlpReceiverProcess(workdir=tmp_path / "rx-env") as rx:
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint), "--headers", "x-key=1")
        assert run.returncode == 0, run.stdout + run.stderr
        sent = [r["headers"] for r in rx.records() if r.get("path") == "/v1/traces"]
        assert sent and sent[0].get("x-key") == "1", sent
    # A --headers value that is not name=value is a usage error, named.
    run = check(cli, clean_env(tmp_path), "--endpoint", "http://127.0.0.1:9", "--headers", "novalue")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--headers must be name=value,..." in run.stderr, run.stderr


def test_an_invalid_variable_is_named_with_the_librarys_reason(cli, tmp_path):
    env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_PROTOCOL="grpc", SPANGUARD_ENDPONT="http://x",
                    OTEL_BSP_MAX_QUEUE_SIZE="4096")
    run = check(cli, env)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    ignored = lines.index("variables ignored (a tracer says so on stderr, and starts without them):")
    assert lines[ignored + 1].startswith("  OTEL_EXPORTER_OTLP_PROTOCOL=grpc: not http/protobuf or http/json"), \
        run.stdout
    assert lines[ignored + 1].endswith("; ignored")
    # What the library does not read at all: a misspelt name of ours.
    assert any(l.startswith("  SPANGUARD_ENDPONT: not a variable spanguard reads") for l in lines), run.stdout
    # A setting taken, not at its default.
    assert "  OTEL_BSP_MAX_QUEUE_SIZE = 4096 (default 2048)" in lines, run.stdout


def test_the_bridges_log_record_caps_are_not_said_to_be_misspelt(cli, tmp_path):
    # Read by the Python and Node bridges' log record processors, not by
    # the library's configuration: check called them "not a variable
    # spanguard reads (misspelt?)", and a user who set one took it back.
    env = clean_env(tmp_path, SPANGUARD_LOG_RECORDS_MAX_HELD="8192",
                    SPANGUARD_LOG_RECORDS_MAX_HELD_BYTES=str(128 << 20), SPANGUARD_ENDPONT="http://x")
    run = check(cli, env)
    assert "SPANGUARD_ENDPONT: not a variable spanguard reads" in run.stdout, run.stdout
    assert "SPANGUARD_LOG_RECORDS_MAX_HELD" not in run.stdout + run.stderr, run.stdout


DISTRO_SAYS = "variables opentelemetry-distro set, not you (_SPANGUARD_DISTRO_SET says so; a tracer takes them as unset):"


def test_grpc_the_distro_set_is_not_said_to_be_the_users(cli, tmp_path):
    # Run in an instrumented Python process's environment (a subprocess,
    # a shell it started), check said opentelemetry-distro's grpc was the
    # user's, ignored, and failed (2), where the tracer there reads it as
    # unset: the wheel names the distro's in _SPANGUARD_DISTRO_SET.
    marked = "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                        _SPANGUARD_DISTRO_SET=f"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc, {marked}")
        run = check(cli, env)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert lines[lines.index(DISTRO_SAYS) + 1] == "  OTEL_EXPORTER_OTLP_PROTOCOL=grpc", run.stdout
        assert "variables ignored" not in run.stdout, run.stdout
        assert "  format            protobuf (http/protobuf)" in lines, run.stdout
        [record] = rx.records()
        assert record["content_type"] == "application/x-protobuf", record
    # An entry holds only while the variable keeps its value, and only for
    # the distro's own default: another value is the user's.
    for variables in (dict(OTEL_EXPORTER_OTLP_PROTOCOL="grpc", _SPANGUARD_DISTRO_SET="OTEL_EXPORTER_OTLP_PROTOCOL=x"),
                      dict(OTEL_EXPORTER_OTLP_PROTOCOL="grpc"),
                      dict(OTEL_EXPORTER_OTLP_PROTOCOL="http/jsn", _SPANGUARD_DISTRO_SET="OTEL_EXPORTER_OTLP_PROTOCOL=http/jsn")):
        run = check(cli, clean_env(tmp_path, **variables))
        assert run.returncode == 2, (variables, run.stdout + run.stderr)
        assert DISTRO_SAYS not in run.stdout, run.stdout
        assert f"  OTEL_EXPORTER_OTLP_PROTOCOL={variables['OTEL_EXPORTER_OTLP_PROTOCOL']}: not http/protobuf" \
            in run.stdout, run.stdout
    # The user's value since: taken.
    run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9/",
                               OTEL_EXPORTER_OTLP_PROTOCOL="http/json", _SPANGUARD_DISTRO_SET=marked))
    assert DISTRO_SAYS not in run.stdout, run.stdout
    assert "format            JSON (http/json)" in run.stdout, run.stdout


def test_without_an_endpoint_it_names_the_sink_and_sends_nothing(cli, tmp_path):
    sink = tmp_path / "sink"
    run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(sink)))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"spans go to       the local sink {sink} (no endpoint is set" in run.stdout, run.stdout
    assert "nothing sent: no OTLP endpoint to check" in run.stdout
    assert "OK:" not in run.stdout and "FAILED:" not in run.stdout
    # What the sink writes, not the protocol an endpoint would be sent.
    assert "format            OTLP/JSON, one request a line, appended to <service>-<pid>.jsonl in the sink" \
        in run.stdout, run.stdout
    assert "compression       none: the sink writes text" in run.stdout, run.stdout
    assert "protobuf" not in run.stdout and "gzip" not in run.stdout, run.stdout
    spool = tmp_path / "home" / ".local" / "state" / "spanguard" / "spool"
    assert f"spool             {spool}: does not exist, so nothing waits" in run.stdout, run.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user takes root")
@pytest.mark.parametrize("setting", ["SPANGUARD_SINK_DIR", "SPANGUARD_SPOOL_DIR"])
def test_a_directory_another_user_made_fails_the_check_as_it_fails_a_tracer(cli, tmp_path, setting):
    # Another local user (nobody) made the directory first, under the name
    # the environment gives: every tracer started here refuses to start
    # (spanguard_tracer_new's configuration error), so the check must not
    # say the spans go there and pass.
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    run = check(cli, clean_env(tmp_path, **{setting: str(theirs)}))
    assert run.returncode == 2, run.stdout + run.stderr
    setting_name = {"SPANGUARD_SINK_DIR": "sink_dir", "SPANGUARD_SPOOL_DIR": "spool_dir"}[setting]
    assert (f"FAILED: a tracer started here refuses to start: {setting_name} ({setting})={theirs}: "
            f"it belongs to uid 65534, not to this user (uid 0)") in run.stdout, run.stdout
    # Judged, not changed: still theirs, as it was.
    meta = theirs.stat()
    assert (meta.st_uid, meta.st_mode & 0o777) == (65534, 0o755)
    # The state directory's parent open to anyone (not sticky): refused too.
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    run = check(cli, clean_env(tmp_path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "on the way to it may be written by anyone (mode 777, not sticky)" in run.stdout, run.stdout
    assert not (home / ".local").exists(), "the check made a directory"
    # A disabled tracer makes and writes nothing: no refusal to say.
    run = check(cli, clean_env(tmp_path, OTEL_SDK_DISABLED="true", **{setting: str(theirs)}))
    assert run.returncode == 0 and "FAILED" not in run.stdout, run.stdout + run.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user takes root")
def test_directories_this_user_cannot_write_are_said(cli):
    # As nobody: a spool directory of theirs they cannot write (0500), and
    # a sink directory that would be made where they cannot (a directory
    # of root's). A tracer there starts, then loses each batch the backend
    # does not take, and writes no span to the sink: the check said neither.
    base = Path(tempfile.mkdtemp(prefix="sg-check-unwritable-"))
    try:
        base.chmod(0o755)
        (base / "home").mkdir()
        os.chown(base / "home", 65534, 65534)
        spool = base / "spool"
        spool.mkdir()
        os.chown(spool, 65534, 65534)
        spool.chmod(0o500)
        sink = base / "sink"
        env = clean_env(base, SPANGUARD_SPOOL_DIR=str(spool), SPANGUARD_SINK_DIR=str(sink))
        run = subprocess.run([str(cli), "check"], capture_output=True, text=True, timeout=60, env=env,
                             user=65534, group=65534, extra_groups=[])
        assert run.returncode == 1, run.stdout + run.stderr
        assert (f"warning: this user cannot make files in the spool directory ({spool}: Permission denied "
                "(os error 13)): a batch the backend does not take is lost, not kept for later") \
            in run.stdout, run.stdout
        assert (f"FAILED: this user cannot make files in the local sink directory ({base}: Permission denied "
                "(os error 13)): no span is written there") in run.stdout, run.stdout
        assert not sink.exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a filesystem takes root")
def test_a_full_filesystem_is_said(cli, tmp_path):
    # A sink directory on a filesystem filled up (a 1 MB tmpfs here) passes
    # access(2), and a tracer there even makes its sink file, then every
    # write fails (the spans wait in the spool): the check said all was well
    # and exited 0. The spool there loses each batch the backend refuses.
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"no tmpfs could be mounted here: {mounted.stderr.strip()}")
    try:
        fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(full / "spans")))
        assert run.returncode == 1, run.stdout + run.stderr
        assert (f"FAILED: this user cannot make files in the local sink directory ({full}: its filesystem "
                "is full (no space left)): no span is written there") in run.stdout, run.stdout
        with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
            run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                                       SPANGUARD_SPOOL_DIR=str(full / "spool")))
        assert run.returncode == 0, run.stdout + run.stderr
        assert (f"warning: this user cannot make files in the spool directory ({full}: its filesystem is "
                "full (no space left)): a batch the backend does not take is lost") in run.stdout, run.stdout
        # Room again: nothing said.
        (full / "filler").unlink()
        run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(full / "spans")))
        assert run.returncode == 0 and "FAILED" not in run.stdout, run.stdout + run.stderr
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_without_an_endpoint_headers_and_request_timeout_are_said_unused(cli, tmp_path):
    """Headers, TLS files and the request timeout are an HTTP request's:
    with spans going to the local sink, check said "headers none" and
    "10000 ms a request", which a sink never sends. Set all the same, each
    is named as set but unused: an API key set with no endpoint goes
    nowhere."""
    sink = tmp_path / "sink"
    run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(sink)))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "headers" not in run.stdout and "a request" not in run.stdout, run.stdout
    assert "  timeout           30000 ms a batch with its retries (a write to the sink that fails is tried " \
        "again until then)" in run.stdout.splitlines(), run.stdout
    ca = tmp_path / "ca.pem"
    ca.write_text("not read\n")
    run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(sink), OTEL_EXPORTER_OTLP_HEADERS="x-api-key=s3cret",
                               OTEL_EXPORTER_OTLP_TIMEOUT="2500", OTEL_EXPORTER_OTLP_CERTIFICATE=str(ca)))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "  headers           x-api-key (values not shown; OTEL_EXPORTER_OTLP_HEADERS): set but unused: " \
        "no endpoint" in lines, run.stdout
    assert "  request timeout   2500 ms (OTEL_EXPORTER_OTLP_TIMEOUT): set but unused: no endpoint" in lines, \
        run.stdout
    assert f"  TLS CA file       {ca}: set but unused: no endpoint" in lines, run.stdout
    assert "s3cret" not in run.stdout and "a request" not in run.stdout, run.stdout
    # Probed with --endpoint, they are the request's again.
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(sink),
                                   OTEL_EXPORTER_OTLP_HEADERS="x-api-key=s3cret"), "--endpoint", rx.endpoint)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert "  headers           x-api-key (values not shown)" in lines, run.stdout
        assert "  timeout           10000 ms a request, 30000 ms a batch with its retries" in lines, run.stdout


def test_the_url_of_endpoint_is_said_to_be_the_one_checked_not_where_spans_go(cli, tmp_path):
    """`check --endpoint URL` with no endpoint set said "spans go to the
    local sink (no endpoint is set)" and then "OK: URL answered 200", and
    nothing tied the two: a newcomer trying a collector before setting
    anything read two answers. The URL is named as the one checked, with
    what makes a tracer send there; where it is the environment's own,
    nothing more is said."""
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        sink = tmp_path / "sink"
        run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(sink)), "--endpoint", rx.endpoint)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"spans go to       the local sink {sink} (no endpoint is set" in run.stdout, run.stdout
        assert (f"  --endpoint        {rx.traces_url} (--endpoint {rx.endpoint}, a base URL, with /v1/traces added) "
                "is checked below; a tracer started here writes to the "
                "local sink above until OTEL_EXPORTER_OTLP_ENDPOINT names a backend") in run.stdout, run.stdout
        assert f"OK: {rx.traces_url} answered 200 in " in run.stdout, run.stdout
        elsewhere = "http://127.0.0.1:9"
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=elsewhere), "--endpoint", rx.endpoint)
        assert run.returncode == 0, run.stdout + run.stderr
        assert (f"  --endpoint        {rx.traces_url} (--endpoint {rx.endpoint}, a base URL, with /v1/traces added) "
                "is checked below, not the endpoint above, where a tracer "
                "started here sends") in run.stdout, run.stdout
        for same in (["--endpoint", rx.endpoint], []):
            run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint), *same)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "--endpoint  " not in run.stdout, run.stdout


def test_an_endpoint_without_its_scheme_is_ignored_and_nothing_is_sent(cli, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        sink = tmp_path / "sink"
        bare = rx.endpoint.removeprefix("http://")
        run = check(cli, clean_env(tmp_path, SPANGUARD_SINK_DIR=str(sink), OTEL_EXPORTER_OTLP_ENDPOINT=bare))
        assert run.returncode == 2, run.stdout + run.stderr
        assert f"spans go to       the local sink {sink} (no usable endpoint" in run.stdout, run.stdout
        assert f"  OTEL_EXPORTER_OTLP_ENDPOINT={bare}: not a URL starting with http:// or https://" in run.stdout
        assert "nothing sent: no OTLP endpoint to check" in run.stdout
        assert rx.records() == []


def test_help_lists_it_and_says_its_exit_statuses(cli, tmp_path):
    top = subprocess.run([str(cli), "--help"], capture_output=True, text=True, timeout=60)
    assert "  check [--endpoint URL]" in top.stdout, top.stdout
    own = check(cli, clean_env(tmp_path), "--help")
    assert own.returncode == 0
    assert own.stdout.startswith("usage: spanguard check [--endpoint URL]"), own.stdout
    assert "Exit status: 0 when every variable is usable" in own.stdout
    bad = check(cli, clean_env(tmp_path), "--endpoint", "ftp://x")
    assert bad.returncode == 2 and "must be an http:// or https:// URL" in bad.stderr, bad.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA (trustme, as tests/python/test_tls.py makes them) and a
    server certificate it signed for localhost; another CA that did not."""
    d = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    stranger.cert_pem.write_to_path(str(d / "stranger.pem"))
    server.private_key_pem.write_to_path(str(d / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    return d


def said(run, start):
    """The one line of `run`'s stdout that starts with `start`."""
    [line] = [l for l in run.stdout.splitlines() if l.startswith(start)]
    return line


def test_an_untrusted_certificate_is_said_with_what_to_set_and_the_right_ca_is_ok(cli, tmp_path, pki):
    with OtlpReceiverProcess(workdir=tmp_path / "rx", tls=(pki / "server.pem", pki / "server.key", None)) as rx:
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint))
        assert run.returncode == 1, run.stdout + run.stderr
        # The library's words, then what to do: curl's end in OpenSSL's
        # code "(20)", which hid the hint.
        assert said(run, "FAILED: ").startswith(
            f"FAILED: {rx.traces_url} after "), run.stdout
        assert ": TLS certificate verification failed: " in said(run, "FAILED: "), run.stdout
        assert said(run, "  what to do: ") == (
            "  what to do: the server's certificate is not trusted here: set OTEL_EXPORTER_OTLP_CERTIFICATE "
            "to the CA certificate that signed it (a PEM file)"), run.stdout
        # A CA file set, but not the one that signed it: named.
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                                   OTEL_EXPORTER_OTLP_CERTIFICATE=str(pki / "stranger.pem")))
        assert run.returncode == 1, run.stdout + run.stderr
        assert said(run, "  what to do: ").startswith(
            f"  what to do: the server's certificate is not signed by the CA in {pki / 'stranger.pem'} "
            "(OTEL_EXPORTER_OTLP_CERTIFICATE)"), run.stdout
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                                   OTEL_EXPORTER_OTLP_CERTIFICATE=str(pki / "ca.pem")))
        assert run.returncode == 0, run.stdout + run.stderr
        assert said(run, "  TLS CA file       ") == f"  TLS CA file       {pki / 'ca.pem'}"
        assert said(run, "OK: ").startswith(f"OK: {rx.traces_url} answered 200 in "), run.stdout
        assert len(rx.accepted_records()) == 1


def test_a_proxy_is_shown_with_its_password_hidden_and_used(cli, tmp_path, pki):
    with OtlpReceiverProcess(workdir=tmp_path / "rx", tls=(pki / "server.pem", pki / "server.key", None)) as rx, \
            LoopbackProxy() as proxy:
        url = f"http://agent:s3cret@127.0.0.1:{proxy.port}"
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, HTTPS_PROXY=url,
                                   OTEL_EXPORTER_OTLP_CERTIFICATE=str(pki / "ca.pem")))
        assert run.returncode == 0, run.stdout + run.stderr
        assert said(run, "  proxy ") == (
            f"  proxy             HTTPS_PROXY=http://agent:***@127.0.0.1:{proxy.port}, used for this host "
            "(no_proxy/NO_PROXY: not set)"), run.stdout
        assert "s3cret" not in run.stdout + run.stderr
        # It went through the proxy: a tunnel to the receiver, with the
        # proxy's credentials.
        assert [(s["method"], s["target"]) for s in proxy.seen] == [("CONNECT", f"localhost:{rx.port}")]
        assert proxy.seen[0]["headers"]["proxy-authorization"] == "Basic YWdlbnQ6czNjcmV0"
        assert len(rx.accepted_records()) == 1


def test_no_proxy_goes_around_the_proxy_and_says_so(cli, tmp_path):
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx, LoopbackProxy() as proxy:
        url = f"http://agent:s3cret@127.0.0.1:{proxy.port}"
        # Through it, as an http_proxy forwards.
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, http_proxy=url,
                                   NO_PROXY="localhost"))
        assert run.returncode == 0, run.stdout + run.stderr
        assert said(run, "  proxy ") == (
            f"  proxy             http_proxy=http://agent:***@127.0.0.1:{proxy.port}, used for this host "
            "(no_proxy/NO_PROXY: localhost)"), run.stdout
        assert [(s["method"], s["target"]) for s in proxy.seen] == [("POST", rx.traces_url)]
        # NO_PROXY=127.0.0.1: curl connects directly, and the check says
        # the proxy is not used (it showed it as if it were).
        proxy.seen.clear()
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, http_proxy=url,
                                   NO_PROXY="example.com, 127.0.0.1"))
        assert run.returncode == 0, run.stdout + run.stderr
        assert said(run, "  proxy ") == (
            f"  proxy             none for this host: NO_PROXY=example.com, 127.0.0.1 covers it, so "
            f"http_proxy=http://agent:***@127.0.0.1:{proxy.port} is not used"), run.stdout
        assert proxy.seen == []
        assert len(rx.accepted_records()) == 2


def test_a_misspelt_endpoint_variable_is_named_with_the_one_meant(cli, demo, tmp_path):
    """OTEL_EXPORTER_OTLP_ENDPONT: the spans went to the local sink without a
    word (an info line), and check said only "not read by spanguard (...
    this option or signal is not one it has)"."""
    env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPONT="http://127.0.0.1:4318")
    run = check(cli, env)
    # A failure, so that a CI step `spanguard check` stops there: it
    # exited 0, and the step passed with the spans going to the sink.
    assert run.returncode == 2, run.stdout + run.stderr
    assert said(run, "FAILED: ") == (
        "FAILED: OTEL_EXPORTER_OTLP_ENDPONT is set, but spanguard reads no variable of that name "
        "(OTEL_EXPORTER_OTLP_ENDPOINT was meant?): a tracer goes on without it, so the spans do not go "
        "where it says"), run.stdout
    assert said(run, "  spans go to ").startswith(
        f"  spans go to       the local sink {tmp_path}/home/.local/state/spanguard/spans (no endpoint is set: "
        "see the variables set but not used below;"), run.stdout
    assert said(run, "  OTEL_EXPORTER_OTLP_ENDPONT") == (
        "  OTEL_EXPORTER_OTLP_ENDPONT: not a variable spanguard reads: OTEL_EXPORTER_OTLP_ENDPOINT was meant? "
        "(spelt so, it is ignored)"), run.stdout
    # A tracer says so on stderr, and where the spans go instead.
    traced = subprocess.run([str(demo)], capture_output=True, text=True, timeout=60, env=env)
    assert traced.returncode == 0, traced.stderr
    warned = [l for l in traced.stderr.splitlines() if l.startswith("spanguard: warn: ")]
    assert warned[0] == ("spanguard: warn: OTEL_EXPORTER_OTLP_ENDPONT is set, but spanguard reads no variable "
                         "of that name: OTEL_EXPORTER_OTLP_ENDPOINT was meant? (ignored)"), traced.stderr
    assert warned[1].startswith(
        f"spanguard: warn: no usable endpoint: writing spans to {tmp_path}/home/.local/state/spanguard/spans/"), \
        traced.stderr


def test_a_misspelt_variable_of_no_consequence_is_a_warning_and_passes(cli, tmp_path):
    """OTEL_BSP_SCHEDULE_DELEY: the batch delay stays at its default, and
    the spans still go where they should: a warning, exit 0. A misspelt
    headers variable sends them unauthenticated: a failure."""
    run = check(cli, clean_env(tmp_path, OTEL_BSP_SCHEDULE_DELEY="200"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert said(run, "warning: ") == (
        "warning: OTEL_BSP_SCHEDULE_DELEY is set, but spanguard reads no variable of that name "
        "(OTEL_BSP_SCHEDULE_DELAY was meant?): a tracer goes on with the default"), run.stdout
    assert "FAILED" not in run.stdout
    run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_HEADER="authorization=secret"))
    assert run.returncode == 2, run.stdout + run.stderr
    assert said(run, "FAILED: ").startswith("FAILED: OTEL_EXPORTER_OTLP_HEADER is set, but"), run.stdout


def test_an_upper_case_http_proxy_is_not_used_for_http_and_check_says_so(cli, tmp_path):
    """curl reads no HTTP_PROXY (upper case) for an http:// URL, only
    http_proxy (the httpoxy rule): the request goes straight to the
    endpoint. Seen here through a loopback proxy that counts what it is
    asked, and said by check (it said nothing of HTTP_PROXY)."""
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx, LoopbackProxy() as proxy:
        url = f"http://agent:s3cret@127.0.0.1:{proxy.port}"
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, HTTP_PROXY=url))
        assert run.returncode == 0, run.stdout + run.stderr
        # Not through the proxy: straight to the receiver.
        assert proxy.seen == []
        assert len(rx.accepted_records()) == 1
        assert said(run, "  proxy ") == (
            f"  proxy             none: HTTP_PROXY=http://agent:***@127.0.0.1:{proxy.port} is not used for an "
            "http:// endpoint (curl reads only http_proxy, in lower case, there): set http_proxy to send the "
            "spans through it"), run.stdout
        assert "s3cret" not in run.stdout
        # The lower-case one is used, as check says.
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, http_proxy=url))
        assert run.returncode == 0, run.stdout + run.stderr
        assert [(s["method"], s["target"]) for s in proxy.seen] == [("POST", rx.traces_url)]
        assert said(run, "  proxy ").startswith("  proxy             http_proxy="), run.stdout
        # With ALL_PROXY set too, curl takes that one: HTTP_PROXY is still
        # not read, and a note under the proxy line says so.
        proxy.seen.clear()
        run = check(cli, clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, HTTP_PROXY="http://127.0.0.1:9",
                                   ALL_PROXY=url))
        assert run.returncode == 0, run.stdout + run.stderr
        assert [(s["method"], s["target"]) for s in proxy.seen] == [("POST", rx.traces_url)]
        lines = run.stdout.splitlines()
        at = lines.index(said(run, "  proxy "))
        assert lines[at].startswith("  proxy             ALL_PROXY="), run.stdout
        assert lines[at + 1] == ("                    (HTTP_PROXY=http://127.0.0.1:9 is not read for an http:// "
                                 "endpoint: curl reads only http_proxy, in lower case, there)"), run.stdout


def test_spans_waiting_in_the_spool_are_said_beside_an_ok(cli, tmp_path):
    """check sends an empty request: its OK says the backend answers, not
    that it takes spans (a backend that takes empty requests and hangs on
    requests of spans answers it at once, and a tracer's flushes there
    spool their batches). With spans waiting in the spool it says so
    beside the OK, and what sends them and tells what each request gets;
    with none, nothing."""
    spool = tmp_path / "spool"
    with OtlpReceiverProcess(workdir=tmp_path / "down", mode="refuse") as rx:
        emit = subprocess.run([str(REPO / "build" / "tests" / "emit_spans"),
                               "--endpoint", rx.endpoint, "--manifest", str(tmp_path / "m.json"), "--count", "4",
                               "--spool-dir", str(spool), "--allow-loss", "--export-timeout-ms", "300"],
                              capture_output=True, text=True, timeout=60)
        assert emit.returncode == 0, emit.stderr
    with OtlpReceiverProcess(workdir=tmp_path / "rx") as rx:
        env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, SPANGUARD_SPOOL_DIR=str(spool))
        run = check(cli, env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert ("  note: 4 spans wait in the spool, and this check sent none: a tracer's next start sends them, "
                "or `spanguard replay` now, which says what each request of spans gets") in run.stdout, run.stdout
        env = clean_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint, SPANGUARD_SPOOL_DIR=str(tmp_path / "none"))
        run = check(cli, env)
        assert run.returncode == 0 and "note:" not in run.stdout, run.stdout
