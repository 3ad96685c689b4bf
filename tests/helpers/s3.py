"""A real S3-compatible server for the remote tests: moto's server mode in a subprocess on 127.0.0.1 (a free port),
checking credentials as S3 does, and a TCP proxy in front of it that can lose the connection mid-transfer."""

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

from pipeline.serving.launch import free_port

HOST = "127.0.0.1"
BUCKET = "team"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class S3:
    """A running server: its endpoint, a bucket, and a key pair it accepts."""

    endpoint: str
    key_id: str
    secret: str
    nowhere: str  # a path where no file is: the AWS config and credentials files of the tests' environment

    def env(self, key_id: str | None = "", secret: str | None = "") -> dict[str, str]:
        """The environment for `dvc` against this server: its key pair (another one when given, none for None),
        and nothing from the user's own AWS set-up (no ~/.aws files, no instance metadata lookup)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_SHARED_CREDENTIALS_FILE=self.nowhere, AWS_CONFIG_FILE=self.nowhere)
        env.update(AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="2", DVC_STUDIO_OFFLINE="true")
        key_id = self.key_id if key_id == "" else key_id
        secret = self.secret if secret == "" else secret
        if key_id is not None and secret is not None:
            env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
        return env

    def client(self, endpoint: str | None = None):
        """A boto3 S3 client with the accepted key pair (to look at what the server holds)."""
        return boto3.client(
            "s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
        )

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under `prefix` in the bucket, by key."""
        client, found = self.client(), {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for entry in page.get("Contents", []):
                found[entry["Key"]] = client.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
        return found


@contextlib.contextmanager
def moto_s3(log: Path) -> Iterator[S3]:
    """Start moto's S3 server on 127.0.0.1, make the bucket and a user with a key pair, turn on credential checks
    (a wrong or missing key is refused from then on), yield it, and stop it."""
    endpoint = f"http://{HOST}:{free_port()}"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", endpoint.rsplit(":", 1)[1]],
            stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(endpoint, server)
        yield _set_up(endpoint, str(log.parent / "no-such-file"))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _wait_until_up(endpoint: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto's server exited with status {server.returncode}; see its log")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2).read()
            return
        time.sleep(0.2)
    raise RuntimeError(f"moto's server did not answer at {endpoint} within {START_TIMEOUT_S} s")


def _set_up(endpoint: str, nowhere: str) -> S3:
    anyone = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "setup",
              "aws_secret_access_key": "setup"}
    boto3.client("s3", **anyone).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **anyone)
    iam.create_user(UserName="lab")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="lab", PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="lab")["AccessKey"]
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=10).read()  # from now on every request must carry the key pair
    return S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"], nowhere)


def content_matches_name(key: str, body: bytes) -> bool:
    """Whether an object of DVC's cache layout (`.../files/md5/ab/cdef...`, `.dir` for a folder's listing) holds
    the bytes its name is the MD5 of."""
    *_, high, low = key.split("/")
    return hashlib.md5(body).hexdigest() == high + low.removesuffix(".dir")


class Proxy:
    """A TCP relay on 127.0.0.1 to `upstream` (host, port). `start(cut_after=N)` listens; once N bytes have gone
    upstream it drops every connection and stops listening, as a lost link would, until `start` again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.port = upstream, free_port()
        self.sent, self.cut = 0, threading.Event()
        self._lock, self._sockets, self._threads = threading.Lock(), set(), []
        self._listener: socket.socket | None = None

    def start(self, cut_after: int | None = None) -> None:
        """Listen (again) on the same port; count bytes sent upstream from 0."""
        self.sent, self._cut_after = 0, cut_after
        self.cut.clear()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        """Stop listening and drop every connection; returns once the relay threads have ended."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=30)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, target: socket.socket, counted: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                target.sendall(chunk)
                if counted and self._counted(len(chunk)):
                    threading.Thread(target=self._lose_link, daemon=True).start()
                    return
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def _counted(self, size: int) -> bool:
        """Add `size` bytes sent upstream; whether they reach the cut-off now."""
        with self._lock:
            self.sent += size
            if self._cut_after is None or self.cut.is_set() or self.sent < self._cut_after:
                return False
            self.cut.set()
            return True

    def _lose_link(self) -> None:
        self.stop()
