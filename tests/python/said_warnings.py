"""What spanguard's stderr says of a backend's warning (an OTLP partial
success that rejects no span but carries a message)."""

import re


def spans_said_warned(lines, message):
    """The spans `lines` (stderr) say the backend accepted with the warning
    `message`: said in full once, first, the later spans summed under its
    label ("N more spans ... (as said above)"). Asserts every line about a
    warning is one of those; 0 when none is."""
    said = [line for line in lines if "with a warning" in line]
    if not said:
        return 0
    first = re.fullmatch(rf"spanguard: warn: the backend accepted (\d+) spans? with a warning: {re.escape(message)}",
                         said[0])
    assert first, said
    label = re.escape(message.split(": ")[0])
    more = [re.fullmatch(rf"spanguard: warn: the backend accepted (\d+) more spans? with a warning: {label} "
                         r"\(as said above\)", line) for line in said[1:]]
    assert all(more), said
    return int(first.group(1)) + sum(int(m.group(1)) for m in more)
