"""A loopback https sink standing in for a Knative broker with ``authentication-oidc`` and
transport encryption on: its certificate is signed by a CA of its own (made here, as a
cluster's CA would be), and it refuses (401) every post whose bearer token it does not accept.
:class:`Authority` makes such a CA and the server's certificate (the Knative emulator's broker
ingress serves https with one too)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standin_server import StandInServer


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
                 signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                        critical=False)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                                        critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


class Authority:
    """A CA of its own, as a cluster's would be (``ca_pem``, what a SinkBinding puts in
    ``K_CA_CERTS``), and a server certificate it signed for ``127.0.0.1``, its files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("katuna test cluster CA", ca_key, None, ca_key, ca=True)
        self.ca_pem = _pem(ca)
        self._chain, self._key = directory / "sink.pem", directory / "sink.key"
        self._chain.write_text(_pem(_certificate("127.0.0.1", key, ca.subject, ca_key, ca=False)))
        self._key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))

    def serving(self, server: ThreadingHTTPServer) -> ThreadingHTTPServer:
        """``server``, listening with TLS under the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._chain, self._key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        return server


class TlsSink:
    """The sink: ``ca_pem`` is what a SinkBinding would put in ``K_CA_CERTS``; ``tokens`` are
    the bearer tokens it accepts (a test adds and removes them, as the issuer rotates them);
    while ``open`` is cleared, it holds each post unanswered (a slow broker); ``posts`` counts
    the posts that reached it, answered or not."""

    def __init__(self, directory: Path) -> None:
        authority = Authority(directory)
        self.ca_pem = authority.ca_pem
        self.tokens: set[str] = set()
        self.received: list[dict[str, str]] = []
        self.refused = 0
        self.posts = 0
        self.open = threading.Event()
        self.open.set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts += 1
                sink.open.wait(60)
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                accepted = scheme == "Bearer" and token in sink.tokens
                if accepted:
                    sink.received.append({k.lower(): v for k, v in self.headers.items()})
                else:
                    sink.refused += 1
                self.send_response(202 if accepted else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = authority.serving(StandInServer(("127.0.0.1", 0), Handler))
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
