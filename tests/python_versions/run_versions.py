#!/usr/bin/env python3
"""The Python package on every CPython it says it supports, not only the
machine's default one (make test-python-versions).

The versions are the `Programming Language :: Python :: 3.N` classifiers of
bindings/python/pyproject.toml: what pip users are told. The default
python's (the test virtualenv's, which make test-python-binding runs the
whole suite in) must be among them; every other one must be found on this
machine, on PATH as `python3.N` or under the given directories (pyenv's
`versions/3.N.*/bin/python3.N`), a GIL build: one missing fails the run,
saying where it was looked for. A version given up on silently would leave
users of it with what nobody ran.

For each: a virtualenv of its own (made again when the requirements or the
interpreter change), the test requirements make venv installs for the
default python (tests/python/requirements.txt, the same pins), the one
abi3 wheel of make dist-python, and the given binding tests run against
it from the current directory (as make test-python-binding runs them).

Then what the README says of versions, checked against what ran: its
install section must name exactly the classifiers' versions, and pip's
answer to a free-threaded CPython (which does not load abi3 extensions,
so refuses the wheel) must be the one the README quotes. pip is asked with
the free-threaded ABI tag (`--abi cp313t`), as no such interpreter need be
on the machine; asked the same with the GIL ABI tag it must accept the
wheel, or the refusal would prove nothing.
"""

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

CLASSIFIER = re.compile(r'"Programming Language :: Python :: (3\.\d+)"')
# What pip says of a wheel whose tags the interpreter does not accept.
PIP_REFUSAL = "is not a supported wheel on this platform"
# The first CPython with a free-threaded build (PEP 703).
FIRST_FREE_THREADED = (3, 13)


def version_key(version: str) -> tuple:
    return tuple(int(part) for part in version.split("."))


def supported_versions(pyproject: Path) -> list[str]:
    versions = sorted(set(CLASSIFIER.findall(pyproject.read_text())), key=version_key)
    if not versions:
        sys.exit(f"{pyproject} names no `Programming Language :: Python :: 3.N` classifier")
    return versions


def interpreter_version(python: str) -> str | None:
    """`3.N` for a GIL build of CPython, None for anything else (or one
    that does not run: a pyenv shim for a version not enabled)."""
    probe = ("import platform, sys, sysconfig; "
             "print(platform.python_implementation(), '%d.%d' % sys.version_info[:2], "
             "sysconfig.get_config_var('Py_GIL_DISABLED') or 0)")
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    implementation, version, gil_disabled = (out.stdout.split() + ["", "", ""])[:3]
    if out.returncode != 0 or implementation != "CPython" or gil_disabled != "0":
        return None
    return version


def find_interpreter(version: str, search_dirs: list[Path]) -> tuple[str | None, list[str]]:
    """The interpreter for `version` and every place looked at."""
    name = f"python{version}"
    candidates = []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(on_path)
    for directory in search_dirs:
        # Newest patch release first.
        found = sorted(directory.glob(f"{version}.*/bin/{name}"), reverse=True,
                       key=lambda p: version_key(re.sub(r"[^0-9.].*", "", p.parts[-3]).rstrip(".") or "0"))
        candidates += [str(p) for p in found]
    looked = [f"{name} on PATH"] + [f"{d}/{version}.*/bin/{name}" for d in search_dirs]
    for python in candidates:
        if interpreter_version(python) == version:
            return python, looked
    return None, looked


def run(cmd: list, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def venv_for(version: str, python: str, venvs: Path, requirements: Path) -> Path:
    """The virtualenv for `version` with the test requirements, made again
    when they or the interpreter changed."""
    venv = venvs / version
    full_version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True,
                                  text=True, check=True).stdout
    stamp = hashlib.sha256(requirements.read_bytes() + str(Path(python).resolve()).encode()
                           + full_version.encode()).hexdigest()
    stamp_file = venv / ".installed"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    run([python, "-m", "venv", venv])
    run([venv / "bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements])
    stamp_file.write_text(stamp)
    return venv


def readme_versions_phrase(versions: list[str]) -> str:
    return "CPython " + ", ".join(versions[:-1]) + " and " + versions[-1]


def free_threaded_refusal(venv: Path, version: str, wheel: Path) -> str | None:
    """What is wrong with pip's answers for the free-threaded build of
    `version` (refuse) and for its GIL build (accept), or None."""
    platform = wheel.name.removesuffix(".whl").split("-")[-1]
    nodot = version.replace(".", "")

    def pip_dry_run(abi: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [venv / "bin/python", "-m", "pip", "install", "--disable-pip-version-check", "--dry-run", "--no-deps",
             "--no-index", "--only-binary=:all:", "--target", venv / "free-threaded-probe", "--implementation",
             "cp", "--python-version", version, "--abi", abi, "--platform", platform, wheel],
            capture_output=True, text=True)

    gil = pip_dry_run(f"cp{nodot}")
    if gil.returncode != 0:
        return f"pip refused the wheel for the GIL build of {version} too:\n{gil.stdout}{gil.stderr}"
    free = pip_dry_run(f"cp{nodot}t")
    if free.returncode == 0 or PIP_REFUSAL not in free.stderr:
        return f"pip did not refuse the wheel for free-threaded {version}t as the README says:\n{free.stdout}{free.stderr}"
    print(f"python-versions: pip refuses the wheel for free-threaded {version}t: {free.stderr.strip()}")
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pyproject", type=Path, required=True)
    ap.add_argument("--readme", type=Path, required=True)
    ap.add_argument("--wheel", type=Path, required=True, nargs="+", help="the one wheel of make dist-python")
    ap.add_argument("--requirements", type=Path, required=True)
    ap.add_argument("--venvs", type=Path, required=True, help="where the virtualenvs are made, one per version")
    ap.add_argument("--default-python", required=True, help="the python make test-python-binding tests with")
    ap.add_argument("--search", type=Path, action="append", default=[],
                    help="a directory of interpreters as pyenv's versions/ (3.N.P/bin/python3.N)")
    ap.add_argument("tests", nargs="+", help="the binding tests (pytest paths) to run on each version")
    args = ap.parse_args()

    if len(args.wheel) != 1:
        sys.exit(f"expected one wheel, got {len(args.wheel)}: {' '.join(map(str, args.wheel))}")
    wheel = args.wheel[0]
    versions = supported_versions(args.pyproject)
    default = interpreter_version(args.default_python)
    if default not in versions:
        sys.exit(f"python-versions: FAILED: the default python ({args.default_python}, {default}) is not among "
                 f"the versions {args.pyproject} names ({', '.join(versions)})")

    problems = []

    def failed(problem: str) -> None:
        print(f"python-versions: FAILED: {problem}", flush=True)
        problems.append(problem)

    phrase = readme_versions_phrase(versions)
    # Words as a reader sees them, whatever the line breaks.
    readme = " ".join(args.readme.read_text().split())
    if phrase not in readme:
        failed(f"{args.readme} does not say `{phrase}` (the versions {args.pyproject} names)")
    if PIP_REFUSAL not in readme:
        failed(f"{args.readme} does not quote pip's refusal for free-threaded builds (`{PIP_REFUSAL}`)")

    others = [v for v in versions if v != default]
    found, missing = {}, {}
    for version in others:
        python, looked = find_interpreter(version, args.search)
        if python:
            found[version] = python
        else:
            missing[version] = looked
    print(f"python-versions: {args.pyproject} names {', '.join(versions)}; {default} is the default "
          f"(make test-python-binding); found: "
          + (", ".join(f"{v} ({p})" for v, p in found.items()) or "none"))
    if missing:
        for version, looked in missing.items():
            print(f"python-versions: FAILED: no CPython {version} (GIL build) found; looked for {', '.join(looked)}")
        print("python-versions: install it (`pyenv install 3.N`, the distribution's python3.N) or put its "
              "python3.N on PATH (make's PYENV_ROOT=DIR: pyenv's other root)")
        return 1

    results = {}
    for version, python in found.items():
        venv = venv_for(version, python, args.venvs, args.requirements)
        vpy = venv / "bin/python"
        run([vpy, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--force-reinstall",
             "--no-deps", wheel])
        print(f"python-versions: {version}: the binding tests against the wheel, with {python}", flush=True)
        tests = subprocess.run([vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *args.tests])
        results[version] = tests.returncode

    free_threaded = [v for v in found if version_key(v) >= FIRST_FREE_THREADED]
    if free_threaded:
        newest = free_threaded[-1]
        problem = free_threaded_refusal(args.venvs / newest, newest, wheel)
        if problem:
            failed(problem)
    else:
        failed("no version from 3.13 on was tested: pip's refusal for free-threaded builds was not checked")

    print("python-versions: binding tests on " + ", ".join(
        f"{v} {'passed' if rc == 0 else 'FAILED'}" for v, rc in results.items())
        + f" (and {default}: make test-python-binding)")
    return 1 if problems or any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
