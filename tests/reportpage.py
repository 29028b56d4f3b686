"""Reading a report page's charts back: each chart's data travels in the page as JSON."""

import json
import re
from typing import Any

_SPEC = re.compile(r"<script type='application/json' class='hchart-spec'>(.*?)</script>", re.S)


def chart_specs(html: str) -> list[dict[str, Any]]:
    return [json.loads(m.replace("<\\/", "</")) for m in _SPEC.findall(html)]


def time_charts(html: str) -> list[dict[str, Any]]:
    """The charts on the run's shared time axis (not the distribution or per-fault panels)."""
    return [spec for spec in chart_specs(html) if spec["sync"]]
