"""The transport: kubectl's watch output split into documents, and what passes to stderr."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubectl_artpulse.kubectl import CliError, JsonStream, Kubectl, KubectlError
from plugin_fakes import FakeKubectl, watch_output

EVENTS = [
    ("ADDED", {"metadata": {"name": "m"}, "status": {"message": "naïve café ✓"}}),
    ("MODIFIED", {"metadata": {"name": "m"}, "status": {"phase": "Stable", "x": [1, 2.5, None]}}),
    ("DELETED", {"metadata": {"name": "m"}}),
]


@given(st.lists(st.integers(min_value=1, max_value=4096), max_size=40))
def test_documents_come_whole_however_the_bytes_are_cut(cuts: list[int]) -> None:
    data = watch_output(*EVENTS).encode()
    stream, values, position = JsonStream(), [], 0
    for size in cuts:
        values += stream.feed(data[position : position + size])
        position += size
    values += stream.feed(data[position:])
    stream.close()
    assert values == [{"type": t, "object": o} for t, o in EVENTS]


def test_a_document_cut_off_at_the_end_is_an_error() -> None:
    stream = JsonStream()
    assert stream.feed(b'{"type": "ADDED"}\n{"type": "MOD') == [{"type": "ADDED"}]
    with pytest.raises(CliError, match="ended inside a JSON document"):
        stream.close()


def test_warnings_of_a_success_pass_through(
    fake_kubectl: FakeKubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kubectl.answer("get", stdout='{"a": 1}', stderr="Warning: v1alpha1 is deprecated\n")
    assert Kubectl(str(fake_kubectl.binary)).json("get", "x") == {"a": 1}
    assert capsys.readouterr().err == "Warning: v1alpha1 is deprecated\n"


NOT_FOUND = 'Error from server (NotFound): artpulsemodels.artpulse.io "m" not found\n'


@pytest.mark.parametrize(
    ("stderr", "quiet", "shown", "withheld"),
    [
        ("error: forbidden\n", False, "error: forbidden\n", ""),
        ("error: forbidden\n", True, "", "error: forbidden\n"),
        (NOT_FOUND, False, "", NOT_FOUND),  # the CLI says it with the namespace
    ],
)
def test_what_a_failure_passes_on(
    fake_kubectl: FakeKubectl,
    capsys: pytest.CaptureFixture[str],
    stderr: str,
    quiet: bool,
    shown: str,
    withheld: str,
) -> None:
    fake_kubectl.answer("get", stderr=stderr, rc=1)
    with pytest.raises(KubectlError) as failed:
        Kubectl(str(fake_kubectl.binary)).run("get", "x", quiet=quiet)
    assert capsys.readouterr().err == shown
    error = failed.value
    assert (error.stderr, error.withheld, error.returncode) == (stderr, withheld, 1)
    assert error.not_found is (stderr == NOT_FOUND)


def test_the_watch_stops_at_its_deadline(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer("get", stdout=watch_output(EVENTS[0]), hang=300)
    kubectl = Kubectl(str(fake_kubectl.binary))
    started = time.monotonic()
    got = list(kubectl.stream("get", "-w", deadline=started + 1))
    assert got == [{"type": "ADDED", "object": EVENTS[0][1]}]
    assert time.monotonic() - started < 60  # kubectl was stopped, not waited for
