"""A real Kubernetes control plane (etcd + kube-apiserver) as local processes.

Used by the test fixtures (one per test session) and by `make cluster-up`. It runs
the binaries the way controller-runtime's envtest does: a throwaway CA and serving
certificate, a service-account signing key and issuer, RBAC authorization, and
static-token identities (an admin in `system:masters`, the operator's
ServiceAccount identity, and a user with no roles). No kubelet, no scheduler: the
API, its validation (OpenAPI and CEL) and its authorization are real.

Binaries come from, in order: TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD /
TEST_ASSET_KUBECTL, KUBEBUILDER_ASSETS, the cache that `hack/kube-bins/build.sh`
fills (built on first use), then PATH.

    python -m artpulse_dev.controlplane up [--state-dir DIR]   # prints the kubeconfig
    python -m artpulse_dev.controlplane down [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from artpulse_dev._proc import free_port, spawn, stop, stop_pid, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBE_BINS_DIR = REPO_ROOT / "hack" / "kube-bins"
KUBE_VERSION = (KUBE_BINS_DIR / "VERSION").read_text().strip()
CACHE_DIR = Path(os.environ.get("ARTPULSE_CACHE", Path.home() / ".cache" / "artpulse"))

OPERATOR_NAMESPACE = "artpulse-system"
OPERATOR_SERVICE_ACCOUNT = "artpulse-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
OPERATOR_GROUPS = (
    "system:serviceaccounts",
    f"system:serviceaccounts:{OPERATOR_NAMESPACE}",
    "system:authenticated",
)


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    kube_controller_manager: Path | None
    gateway_api_crds: Path | None
    kube_scheduler: Path | None = None
    kubelet: Path | None = None
    kube_proxy: Path | None = None

    @property
    def bin_dir(self) -> Path:
        return self.kubectl.parent


def _from_env_or_dirs(name: str, env_var: str, dirs: list[Path]) -> Path | None:
    if os.environ.get(env_var):
        return Path(os.environ[env_var])
    for directory in dirs:
        if (directory / name).is_file():
            return directory / name
    found = shutil.which(name)
    return Path(found) if found else None


def find_binaries(build: bool = True) -> Binaries:
    """Locate the control-plane binaries, building them into the cache when missing."""
    cache = CACHE_DIR / "kube" / KUBE_VERSION
    dirs = [Path(p) for p in [os.environ.get("KUBEBUILDER_ASSETS", "")] if p] + [cache]

    def lookup() -> tuple[Path | None, Path | None, Path | None]:
        return (
            _from_env_or_dirs("etcd", "TEST_ASSET_ETCD", dirs),
            _from_env_or_dirs("kube-apiserver", "TEST_ASSET_KUBE_APISERVER", dirs),
            _from_env_or_dirs("kubectl", "TEST_ASSET_KUBECTL", dirs),
        )

    etcd, apiserver, kubectl = lookup()
    node_parts = ("kube-scheduler", "kubelet", "kube-proxy", "kube-controller-manager")
    if (
        etcd is None
        or apiserver is None
        or kubectl is None
        or not (cache / "gateway-api-crds").is_dir()
        or not all((cache / name).is_file() for name in node_parts)
    ) and build:
        subprocess.run(["bash", str(KUBE_BINS_DIR / "build.sh")], check=True, stdout=sys.stderr)
        etcd, apiserver, kubectl = lookup()
    if etcd is None or apiserver is None or kubectl is None:
        raise FileNotFoundError(
            "kube-apiserver, etcd or kubectl not found: run `make kube-bins` "
            "(or set KUBEBUILDER_ASSETS)"
        )
    kcm = _from_env_or_dirs("kube-controller-manager", "TEST_ASSET_KUBE_CONTROLLER_MANAGER", dirs)
    crds = cache / "gateway-api-crds"
    return Binaries(
        etcd,
        apiserver,
        kubectl,
        kcm,
        crds if crds.is_dir() else None,
        kube_scheduler=_from_env_or_dirs("kube-scheduler", "TEST_ASSET_KUBE_SCHEDULER", dirs),
        kubelet=_from_env_or_dirs("kubelet", "TEST_ASSET_KUBELET", dirs),
        kube_proxy=_from_env_or_dirs("kube-proxy", "TEST_ASSET_KUBE_PROXY", dirs),
    )


# --- certificates -----------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _make_certs(cert_dir: Path, extra_ips: tuple[str, ...] = ()) -> None:
    """A CA, a serving certificate (loopback, the `kubernetes` Service, `extra_ips`), the
    API server's client certificate for kubelets, and a service-account key."""
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "artpulse-dev-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = _key()
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                    *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    # The API server's identity towards kubelets (logs, exec, port-forward), in system:masters.
    client_key = _key()
    client_cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    (cert_dir / "kubelet-client.crt").write_bytes(
        client_cert.public_bytes(serialization.Encoding.PEM)
    )
    _write_key(client_key, cert_dir / "kubelet-client.key")
    (cert_dir / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, cert_dir / "ca.key")
    (cert_dir / "apiserver.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(serving_key, cert_dir / "apiserver.key")
    _write_key(_key(), cert_dir / "sa.key")


# --- the control plane ------------------------------------------------------------


@dataclass
class ControlPlane:
    """etcd + kube-apiserver under `state_dir`; `start()` returns when /readyz is ok.

    `advertise_address`: where the API server listens and what the `kubernetes` Service
    points at; loopback for the API-only plane, the node's bridge address for a cluster
    with a node (`cluster.py`), so pods reach it. `service_account_admission`: on for a
    cluster whose controller-manager issues ServiceAccount tokens to pods; off for the
    API-only plane, which runs no pods.
    """

    state_dir: Path
    binaries: Binaries = field(default_factory=find_binaries)
    install_crds: bool = True
    advertise_address: str = "127.0.0.1"
    service_account_admission: bool = False
    url: str = ""
    _etcd: subprocess.Popen[bytes] | None = None
    _apiserver: subprocess.Popen[bytes] | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def bin_dir(self) -> Path:
        return self.binaries.bin_dir

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return self.state_dir / "operator.kubeconfig"

    @property
    def nobody_kubeconfig(self) -> Path:
        return self.state_dir / "nobody.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def start(self) -> ControlPlane:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pki = self.state_dir / "pki"
        pki.mkdir(exist_ok=True)
        _make_certs(pki, extra_ips=(self.advertise_address,))
        self._start_etcd()
        try:
            self._start_apiserver(pki)
            if self.install_crds:
                self.apply_crds()
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        data_dir = self.state_dir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)
        client_url = f"http://127.0.0.1:{client_port}"
        log = self.logs_dir / "etcd.log"
        self._etcd = spawn(
            [
                self.binaries.etcd,
                "--data-dir", data_dir,
                "--listen-client-urls", client_url,
                "--advertise-client-urls", client_url,
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes", str(4 * 1024**3),
                "--log-level", "warn",
            ],
            log,
        )  # fmt: skip
        self._etcd_url = client_url
        wait_until(
            lambda: urllib.request.urlopen(f"{client_url}/health", timeout=1).status == 200,
            60,
            "etcd",
            self._etcd,
            log,
        )

    def _start_apiserver(self, pki: Path) -> None:
        self._tokens = {name: secrets.token_hex(16) for name in ("admin", "operator", "nobody")}
        token_file = self.state_dir / "tokens.csv"
        token_file.write_text(
            f'{self._tokens["admin"]},admin,admin,"system:masters,system:authenticated"\n'
            f'{self._tokens["operator"]},{OPERATOR_USER},operator-uid,"{",".join(OPERATOR_GROUPS)}"\n'
            f'{self._tokens["nobody"]},nobody,nobody-uid,"system:authenticated"\n'
        )
        token_file.chmod(0o600)
        port = free_port()
        self.url = f"https://{self.advertise_address}:{port}"
        log = self.logs_dir / "kube-apiserver.log"
        admission = (
            ["--enable-admission-plugins", "ServiceAccount,NodeRestriction"]
            if self.service_account_admission
            else ["--disable-admission-plugins", "ServiceAccount"]
        )
        self._apiserver = spawn(
            [
                self.binaries.kube_apiserver,
                "--etcd-servers", self._etcd_url,
                "--bind-address", self.advertise_address,
                "--advertise-address", self.advertise_address,
                "--secure-port", str(port),
                "--tls-cert-file", pki / "apiserver.crt",
                "--tls-private-key-file", pki / "apiserver.key",
                "--client-ca-file", pki / "ca.crt",
                "--token-auth-file", token_file,
                "--authorization-mode", "RBAC",
                "--service-cluster-ip-range", "10.0.0.0/16",
                "--allow-privileged=true",
                *admission,
                "--kubelet-client-certificate", pki / "kubelet-client.crt",
                "--kubelet-client-key", pki / "kubelet-client.key",
                "--kubelet-preferred-address-types", "InternalIP",
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file", pki / "sa.key",
                "--service-account-signing-key-file", pki / "sa.key",
                "--enable-priority-and-fairness=false",
                "--v", "1",
            ],
            log,
        )  # fmt: skip
        for name, path in (
            ("admin", self.kubeconfig),
            ("operator", self.operator_kubeconfig),
            ("nobody", self.nobody_kubeconfig),
        ):
            self._write_kubeconfig(path, name, self._tokens[name])
        ctx = ssl.create_default_context(cafile=str(self.ca_file))

        def ready() -> bool:
            request = urllib.request.Request(
                f"{self.url}/readyz", headers={"Authorization": f"Bearer {self._tokens['admin']}"}
            )
            with urllib.request.urlopen(request, timeout=2, context=ctx) as response:
                return bool(response.status == 200)

        wait_until(ready, 120, "kube-apiserver", self._apiserver, log, interval=0.25)
        # RBAC's bootstrap roles are written by a post-start hook; /readyz covers it,
        # but the default namespace can trail behind: wait for it too.
        wait_until(
            lambda: self.kubectl("get", "namespace", "default", check=False).returncode == 0,
            60,
            "default namespace",
            self._apiserver,
            log,
        )

    def _write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "artpulse-dev",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": "artpulse-dev", "user": user}}],
            "current-context": user,
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane (admin unless `kubeconfig` says otherwise)."""
        result = subprocess.run(
            [str(self.binaries.kubectl), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result

    def apply_crds(self) -> None:
        """Install (or update) our CRDs and the Gateway API standard CRDs, and wait for them."""
        paths = sorted((REPO_ROOT / "crds").glob("*.yaml"))
        paths = [p for p in paths if p.name != "kustomization.yaml"]
        if self.binaries.gateway_api_crds is not None:
            paths += sorted(self.binaries.gateway_api_crds.glob("*.yaml"))
        if not paths:
            return
        args = ["apply", "--server-side", "--force-conflicts"]
        for path in paths:
            args += ["-f", str(path)]
        self.kubectl(*args)
        self.kubectl("wait", "--for", "condition=Established", "crd", "--all", "--timeout", "60s")

    def stop(self) -> None:
        stop(self._apiserver)
        stop(self._etcd)
        state = self.state_dir / "state.json"
        state.unlink(missing_ok=True)

    def _write_state(self) -> None:
        pids = [p.pid for p in (self._apiserver, self._etcd) if p is not None]
        (self.state_dir / "state.json").write_text(
            json.dumps({"url": self.url, "pids": pids, "kubeconfig": str(self.kubeconfig)})
        )


def stop_from_state(state_dir: Path) -> bool:
    """Stop a control plane started by another process (`up`); False when none was running."""
    state = state_dir / "state.json"
    if not state.exists():
        return False
    for pid in json.loads(state.read_text())["pids"]:
        stop_pid(int(pid))
    state.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m artpulse_dev.controlplane", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "build"])
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".artpulse" / "controlplane")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(find_binaries().bin_dir)
        return 0
    if args.command == "down":
        print("stopped" if stop_from_state(args.state_dir) else "no control plane was running")
        return 0
    stop_from_state(args.state_dir)
    plane = ControlPlane(args.state_dir).start()
    print(f"control plane up at {plane.url} (Kubernetes {KUBE_VERSION}); logs in {plane.logs_dir}")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    print(f"kubectl is at {plane.bin_dir / 'kubectl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
