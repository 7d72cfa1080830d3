#!/usr/bin/env python3
"""Runs README.md's Python programs the way a user would: in a fresh
directory outside the repository holding the wheel of `make dist`, with the
commands of the README's run block (which make a virtualenv and pip-install
the wheel), and no SPANGUARD_* or OTEL_* variable. Their spans must arrive:
decoded with opentelemetry-proto, the span names must be exactly those the
example's marker lists, each once.

A program is a ```python block marked by the comment before it, and its
commands a ```sh block marked the same way:

    <!-- example: app.py spans: agent.session llm.chat -->
    <!-- run: app.py -->

The program prints `the spans are in PATH` (a sink file); without that
line the spans are looked for in the default sink, which XDG_STATE_HOME
puts in the scratch directory.

readme_python.py --dist DIR README.md
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receiver"))
from otlp_receiver import JSON, decode_request, span_dicts  # noqa: E402

EXAMPLE = re.compile(r"<!--\s*example:\s*(\S+\.py)\s+spans:\s*([^>]*?)\s*-->\s*\n```python\n(.*?)```", re.S)
RUN = re.compile(r"<!--\s*run:\s*(\S+\.py)\s*-->\s*\n```(?:sh|bash)\n(.*?)```", re.S)
WHERE = re.compile(r"the spans are in (\S+)")


def spans_in(paths):
    names = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                request, _ = decode_request(line.encode(), JSON, None, strict=True)
                names += [s["name"] for s in span_dicts(request)]
    return names


def run_example(name, program, commands, expected, dist: Path):
    workdir = Path(tempfile.mkdtemp(prefix="spanguard-readme-py-"))
    try:
        (workdir / name).write_text(program)
        for wheel in dist.glob("spanguard-*.whl"):
            shutil.copy(wheel, workdir / wheel.name)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SPANGUARD_", "OTEL_", "VIRTUAL_ENV", "PYTHON"))}
        env.update(XDG_STATE_HOME=str(workdir / "state"), PIP_DISABLE_PIP_VERSION_CHECK="1")
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        report = f"--- commands\n{commands}--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
        if proc.returncode != 0:
            return f"{name}: the commands failed with status {proc.returncode}\n{report}"
        where = WHERE.findall(proc.stdout)
        files = [(workdir / where[-1]).resolve()] if where else sorted((workdir / "state").rglob("*.jsonl"))
        if not files or not all(f.is_file() for f in files):
            return f"{name}: no sink file ({files})\n{report}"
        got = spans_in(files)
        if Counter(got) != Counter(expected):
            return f"{name}: spans {sorted(got)} arrived, the README promises {sorted(expected)}\n{report}"
        print(f"ok {name}: {len(got)} spans, as the README says")
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", required=True, type=Path)
    ap.add_argument("readme", type=Path)
    args = ap.parse_args()
    text = args.readme.read_text()
    runs = dict(RUN.findall(text))
    examples = EXAMPLE.findall(text)
    if not list(args.dist.glob("spanguard-*.whl")):
        sys.exit(f"no wheel in {args.dist}: run make dist")
    errors, passed = [], 0
    if not examples:
        errors.append("README.md has no marked Python example")
    for name, spans, program in examples:
        if name not in runs:
            errors.append(f"{name}: no `<!-- run: {name} -->` block")
            continue
        err = run_example(name, program, runs[name], spans.split(), args.dist.resolve())
        if err:
            errors.append(err)
        else:
            passed += 1
    for e in errors:
        print(f"FAIL {e}", file=sys.stderr)
    print(f"{passed} passed, {len(errors)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
