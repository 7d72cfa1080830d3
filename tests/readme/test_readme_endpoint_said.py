"""Where the READMEs' examples say their spans were sent, they say the URL
the tracer used, asked of the tracer (`endpoint()`, `Endpoint()`,
`spanguard_tracer_endpoint`), not the endpoint variable's text. With
OTEL_EXPORTER_OTLP_ENDPOINT set to a whole traces URL (`.../v1/traces`),
the tracer sends to `.../v1/traces/v1/traces` (the variable is a base URL
that /v1/traces is added to) and the backend answers 404: the example said
"0 spans sent to http://host:4318/v1/traces", the URL that would have
worked, beside the library's warning about a URL with /v1/traces twice
that the user could not see anywhere."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READMES = [REPO / "README.md", REPO / "bindings" / "node" / "README.md", REPO / "bindings" / "go" / "README.md"]
BLOCK = re.compile(r"^```\w*\n(.*?)^```", re.S | re.M)
# The endpoint variable read in a program, in each language the READMEs show.
VARIABLE_READ = re.compile(
    r"(?:getenv|Getenv|process\.env\.|os\.environ(?:\.get)?)\W*OTEL_EXPORTER_OTLP_(?:TRACES_)?ENDPOINT")
# The tracer asked for the URL it used.
TRACER_ASKED = re.compile(r"\.endpoint\(\)|\.Endpoint\(\)|spanguard_tracer_endpoint\(")


def said_from_the_variable(text):
    """The examples of `text` that print where their spans were sent with
    the variable's text rather than the tracer's word: their first lines."""
    for block in BLOCK.finditer(text):
        code = block.group(1)
        if "sent to" in code and VARIABLE_READ.search(code) and not TRACER_ASKED.search(code):
            yield code.strip().splitlines()[0]


def test_every_example_says_the_url_its_tracer_used():
    found = [f"{path.relative_to(REPO)}: {first}"
             for path in READMES for first in said_from_the_variable(path.read_text())]
    assert found == [], "\n".join(found)


def test_the_check_finds_an_example_that_prints_the_variable():
    node = ("```js\nconsole.log(`sent to ${process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || "
            "process.env.OTEL_EXPORTER_OTLP_ENDPOINT}`);\n```\n")
    python = '```python\nendpoint = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]\nprint(f"sent to {endpoint}")\n```\n'
    go = ('```go\nfmt.Printf("sent to %s", cmp.Or(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), '
          'os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")))\n```\n')
    c = '```c\nconst char *e = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");\nprintf("sent to %s", e);\n```\n'
    for example in (node, python, go, c):
        assert list(said_from_the_variable(example)), example
    assert not list(said_from_the_variable("```js\nconsole.log(`sent to ${tracer.endpoint()}`);\n```\n"))
