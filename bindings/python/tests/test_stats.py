"""tracer.stats() holds every counter of the C ABI's spanguard_counters
(and the binding's values_rejected). The binding copied 27 of the 31: a
Python program could not see the spans lost replaying the spool
(dropped_replay_failed, dropped_replay_rejected), exporter_panics or
files_set_aside, so the README's count of what became of the spool
directory's spans could not be made from Python."""

import re
from dataclasses import fields
from pathlib import Path

import spanguard

HEADER = Path(__file__).resolve().parents[3] / "include" / "spanguard.h"
LOG_RECORD_COUNTS = ("log_records_attached", "log_records_not_attached", "log_records_held")


def header_counters() -> list[str]:
    """The fields of spanguard_counters in the C header, but its size and
    reserved word."""
    text = HEADER.read_text()
    start = text.index("typedef struct spanguard_counters {")
    body = text[start:text.index("} spanguard_counters;", start)]
    return re.findall(r"^\s*uint64_t (\w+);", body, re.M)


def test_stats_holds_every_counter_of_spanguard_counters(tracer):
    counters = header_counters()
    assert len(counters) >= 31 and "spans_begun" in counters, f"header read: {counters}"
    expected = sorted([*counters, "values_rejected"])
    with tracer.span("one"):
        pass
    assert tracer.flush(10)
    # What the native class copies, and what the Stats dataclass keeps of it
    # (stats() leaves out a key Stats has no field for).
    assert sorted(tracer._counters()) == expected
    # And the OpenTelemetry bridge's log record counts, the Python layer's
    # own (Node's stats() has the same three).
    expected = sorted([*expected, *LOG_RECORD_COUNTS])
    assert sorted(f.name for f in fields(spanguard.Stats)) == expected
    stats = tracer.stats()
    assert all(type(getattr(stats, k)) is int for k in expected)
    assert stats.spans_begun == stats.spans_ended == stats.spans_exported == 1


def test_files_set_aside_reaches_python(tracer, tmp_path):
    # A link planted where the sink file goes is moved aside and counted in
    # files_set_aside (as the Rust test of the file sink shows): the count
    # reaches Python, where it was left out.
    Path(tracer.sink_path()).symlink_to(tmp_path / "elsewhere")
    with tracer.span("one"):
        pass
    assert tracer.flush(10)
    stats = tracer.stats()
    assert (stats.spans_exported, stats.files_set_aside) == (1, 1), stats
