"""The official CIFAR-10 archive: torchvision's address and md5, the cache, and the download checked by md5, with
torchvision's network calls replaced by a fake server."""

import hashlib
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.datasets import Cifar10Data
from pipeline.core.errors import PipelineError
from pipeline.data.sources import cifar_official
from pipeline.stages.download import download
from tests.helpers.cifar_files import assert_nothing_written, decoded, official_tar

SOURCE_KEY = r"data\.cifar10\.source"

pytestmark = pytest.mark.usefixtures("offline_cifar_cache")


def test_constants_are_torchvisions():
    from torchvision.datasets import CIFAR10 as TorchvisionCifar10

    assert (cifar_official.URL, cifar_official.FILENAME, cifar_official.TGZ_MD5) == (
        TorchvisionCifar10.url,
        TorchvisionCifar10.filename,
        TorchvisionCifar10.tgz_md5,
    )


def test_cache_dir_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(cifar_official.CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert cifar_official.cache_dir() == tmp_path / ".cache" / "image-pipeline" / "cifar10"


class FakeServer:
    """Stands in for torchvision's HTTP download: serves its bodies in turn (the last one again and again), each
    fixed bytes or a failure, and counts the requests."""

    def __init__(self, *bodies: bytes | BaseException):
        self.bodies, self.requests = bodies, []

    def retrieve(self, url: str, filename: str, chunk_size: int = 0) -> None:
        body = self.bodies[min(len(self.requests), len(self.bodies) - 1)]
        self.requests.append(url)
        if isinstance(body, BaseException):
            raise body
        Path(filename).write_bytes(body)


@pytest.fixture
def serve(monkeypatch):
    """Replace torchvision's network calls (redirect lookup, retrieval) with a FakeServer."""
    import torchvision.datasets.utils as utils

    def start(*bodies: bytes | BaseException) -> FakeServer:
        server = FakeServer(*bodies)
        monkeypatch.setattr(utils, "_is_remote_location_available", lambda: False)
        monkeypatch.setattr(utils, "_get_redirect_url", lambda url, max_hops=3: url)
        monkeypatch.setattr(utils, "_urlretrieve", server.retrieve)
        return server

    return start


@pytest.fixture
def official_bytes(tmp_path, cifar_batches) -> bytes:
    return official_tar(tmp_path / "served", cifar_batches).read_bytes()


def test_torchvision_source_downloads_once_and_reuses_the_cache(paths, monkeypatch, serve, official_bytes, cifar_images):
    monkeypatch.setattr(cifar_official, "TGZ_MD5", hashlib.md5(official_bytes).hexdigest())
    server = serve(official_bytes)

    first = download("cifar10", Cifar10Data(source="torchvision"), 0, paths).samples
    again = download("cifar10", Cifar10Data(source="torchvision"), 0, paths).samples

    assert server.requests == [cifar_official.URL]
    assert first == again == len(cifar_images)
    assert (cifar_official.cache_dir() / cifar_official.FILENAME).read_bytes() == official_bytes
    assert all(np.array_equal(image, cifar_images[name]) for name, image in decoded(paths).items())


def test_torchvision_checksum_mismatch_downloads_once_more_then_fails_and_removes_it(paths, serve, official_bytes):
    server = serve(official_bytes)
    archive = cifar_official.cache_dir() / cifar_official.FILENAME

    with pytest.raises(PipelineError, match=SOURCE_KEY) as error:
        download("cifar10", Cifar10Data(source="torchvision"), 0, paths)

    assert server.requests == [cifar_official.URL, cifar_official.URL]
    assert f"downloaded from {cifar_official.URL} does not match the official md5 {cifar_official.TGZ_MD5} in 2 attempts" in str(
        error.value
    )
    assert not archive.exists()
    assert list(cifar_official.cache_dir().iterdir()) == []
    assert_nothing_written(paths)


def test_torchvision_checksum_mismatch_then_a_good_download_succeeds(
    paths, monkeypatch, serve, official_bytes, cifar_images
):
    monkeypatch.setattr(cifar_official, "TGZ_MD5", hashlib.md5(official_bytes).hexdigest())
    server = serve(official_bytes[:-100], official_bytes)

    assert download("cifar10", Cifar10Data(source="torchvision"), 0, paths).samples == len(cifar_images)

    assert server.requests == [cifar_official.URL, cifar_official.URL]
    assert list(cifar_official.cache_dir().iterdir()) == [cifar_official.cache_dir() / cifar_official.FILENAME]


def test_a_corrupt_archive_in_the_cache_is_replaced_by_a_fresh_download(
    paths, monkeypatch, serve, official_bytes, cifar_images
):
    monkeypatch.setattr(cifar_official, "TGZ_MD5", hashlib.md5(official_bytes).hexdigest())
    archive = cifar_official.cache_dir() / cifar_official.FILENAME
    archive.parent.mkdir(parents=True)
    archive.write_bytes(official_bytes[: len(official_bytes) // 2])
    serve(official_bytes)
    assert download("cifar10", Cifar10Data(source="torchvision"), 0, paths).samples == len(cifar_images)
    assert archive.read_bytes() == official_bytes
    assert list(cifar_official.cache_dir().iterdir()) == [archive]


def test_torchvision_network_error_suggests_a_local_copy(paths, serve):
    serve(urllib.error.URLError("Name or service not known"))

    with pytest.raises(PipelineError, match=SOURCE_KEY) as error:
        download("cifar10", Cifar10Data(source="torchvision"), 0, paths)

    message = str(error.value)
    assert f"could not download {cifar_official.URL}" in message
    assert re.search(r"source: local with data\.cifar10\.path", message)
    assert list(cifar_official.cache_dir().iterdir()) == []
    assert_nothing_written(paths)
