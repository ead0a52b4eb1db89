"""A fake kubectl for the plugin's tests: an executable Python script in tmp_path, and the
test data (tests/data/plugin). The fixtures are in conftest.py.

The plugin finds it through ``ARTPULSE_KUBECTL``. It records every argv (``calls``) and answers
by rules: the rule whose words all appear in argv (the one with most words, then the latest)
gives its next response (stdout, stderr, exit code, and optionally a time it then stays up, as
a watch does); the last response repeats. A call no rule matches exits 99, so a test never
talks to a real cluster by accident.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parents[2] / "data" / "plugin"

SCRIPT = """#!{python}
import json, sys, time
from pathlib import Path

state = Path({state!r})
argv = sys.argv[1:]
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps(argv) + "\\n")
rules = json.loads((state / "rules.json").read_text())
matching = [
    (len(rule["words"]), index, rule)
    for index, rule in enumerate(rules)
    if all(word in argv for word in rule["words"])
]
if not matching:
    sys.stderr.write("fake kubectl: no rule for: " + " ".join(argv) + "\\n")
    sys.exit(99)
_, index, rule = max(matching, key=lambda m: (m[0], m[1]))
counter = state / ("rule-%d.count" % index)
calls = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(calls + 1))
response = rule["responses"][min(calls, len(rule["responses"]) - 1)]
sys.stdout.write(response.get("stdout", ""))
sys.stdout.flush()
sys.stderr.write(response.get("stderr", ""))
sys.stderr.flush()
time.sleep(response.get("hang", 0))
sys.exit(response.get("rc", 0))
"""


def watch_output(*events: tuple[str, Mapping[str, Any]]) -> str:
    """What ``kubectl get -w -o json --output-watch-events`` prints: indented documents."""
    return "\n".join(json.dumps({"type": t, "object": o}, indent=4) for t, o in events) + "\n"


@dataclass
class FakeKubectl:
    state: Path
    binary: Path

    def _rules(self) -> list[dict[str, Any]]:
        return list(json.loads((self.state / "rules.json").read_text()))

    def on(self, *words: str, responses: Iterable[Mapping[str, Any]]) -> FakeKubectl:
        rules = [*self._rules(), {"words": list(words), "responses": list(responses)}]
        (self.state / "rules.json").write_text(json.dumps(rules))
        return self

    def answer(
        self, *words: str, stdout: str = "", stderr: str = "", rc: int = 0, hang: float = 0
    ) -> FakeKubectl:
        return self.on(
            *words, responses=[{"stdout": stdout, "stderr": stderr, "rc": rc, "hang": hang}]
        )

    def answer_json(self, *words: str, obj: Any) -> FakeKubectl:
        return self.answer(*words, stdout=json.dumps(obj, indent=4) + "\n")

    @property
    def calls(self) -> list[list[str]]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def calls_with(self, *words: str) -> list[list[str]]:
        return [c for c in self.calls if all(w in c for w in words)]


def load(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text())
