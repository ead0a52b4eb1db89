"""Shell completion: the scripts, and what ``__complete`` answers them (and kubectl, through
``kubectl_complete-artpulse``)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import kubectl_artpulse
import pytest
from kubectl_artpulse.cli import main
from kubectl_artpulse.completion import candidates, script
from kubectl_artpulse.contract import RESOURCE
from plugin_fakes import FakeKubectl

PLUGIN_DIR = Path(kubectl_artpulse.__file__).resolve().parents[1]


def values(words: list[str]) -> list[str]:
    return [c.split("\t")[0] for c in candidates(words)[0]]


def test_commands_flags_and_their_values(fake_kubectl: FakeKubectl) -> None:
    assert values([""])[:3] == ["list", "get", "status"]
    assert values(["st"]) == ["status"]
    assert values(["status", "x", "--t"]) == ["--timeout", "--token"]
    assert "--no-watch" in values(["status", "x", "--"])
    assert values(["list", "-o", ""]) == ["json", "yaml", "name"]
    assert values(["get", "x", "--output=y"]) == ["--output=yaml"]
    assert values(["completion", ""]) == ["bash", "zsh"]
    assert candidates(["--kubeconfig", ""]) == ([], 0)  # the shell offers file names
    assert candidates(["status", "x", ""]) == ([], 4)  # nothing more, and no file names
    assert fake_kubectl.calls == []


def test_model_names_namespaces_and_contexts_come_from_kubectl(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer("get", RESOURCE, "-o", "name", stdout="artpulsemodel.artpulse.io/art-a\nartpulsemodel.artpulse.io/b\n")  # fmt: skip
    fake_kubectl.answer("get", "namespaces", stdout="namespace/ml\nnamespace/default\n")
    fake_kubectl.answer("config", "get-contexts", stdout="prod\nstaging\n")
    assert values(["--context", "prod", "-n", "ml", "promote", "art"]) == ["art-a"]
    assert fake_kubectl.calls[-1] == [
        "--context=prod", "--namespace=ml", "--request-timeout=5s", "get", RESOURCE, "-o", "name",
    ]  # fmt: skip
    assert values(["-n", "m"]) == ["ml"]
    assert values(["get", "x", "--context", "st"]) == ["staging"]


def test_a_broken_cluster_completes_nothing(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer("get", stderr="Unable to connect to the server\n", rc=1)
    assert candidates(["get", ""]) == ([], 4)


def test_the_complete_protocol(fake_kubectl: FakeKubectl) -> None:
    out = io.StringIO()
    assert main(["__complete", "ver"], out=out) == 0
    assert out.getvalue().splitlines() == [
        "version\tthe plugin's version, and the ArtPulse CRD and operator the cluster has",
        ":4",
    ]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_the_script(shell: str) -> None:
    out = io.StringIO()
    assert main(["completion", shell], out=out) == 0
    assert out.getvalue() == script(shell)
    assert "__complete" in out.getvalue()


def test_the_zsh_script_registers_itself() -> None:
    text = script("zsh")
    assert text.startswith("#compdef kubectl-artpulse\n")
    assert "compdef _kubectl_artpulse kubectl-artpulse" in text
    if shutil.which("zsh"):
        subprocess.run(["zsh", "-n"], input=text, text=True, check=True)


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``kubectl-artpulse`` on PATH, as pip or the zipapp would put it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "kubectl-artpulse"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kubectl_artpulse "$@"\n')
    command.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("PYTHONPATH", str(PLUGIN_DIR))
    return bin_dir


def bash_complete(line: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end) with the script loaded."""
    words = line.split(" ")
    program = (
        "source <(kubectl-artpulse completion bash)\n"
        f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_kubectl_artpulse; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_through_the_plugin(on_path: Path, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer("get", RESOURCE, "-o", "name", stdout="artpulsemodel.artpulse.io/art-a\n")
    assert bash_complete("kubectl-artpulse st") == ["status"]
    assert bash_complete("kubectl-artpulse status ") == ["art-a"]
    assert bash_complete("kubectl-artpulse list -o y") == ["yaml"]
    # bash breaks words at '=': the script offers what follows it.
    assert bash_complete("kubectl-artpulse list --output=j") == ["json"]
