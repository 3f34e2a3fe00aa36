from __future__ import annotations

from pathlib import Path

import pytest

from percept.storage.blobs import BlobStore, InvalidKey


@pytest.fixture(params=["local", "memory"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(str(tmp_path / "blobs"))
    return BlobStore(f"memory://percept-test-{tmp_path.name}")


def test_round_trip_and_listing(blobs: BlobStore) -> None:
    blobs.put_bytes("audio/u1/a.mp3", b"abc")
    blobs.put_bytes("audio/u1/b.mp3", b"defg")
    blobs.put_bytes("image/u2/c.png", b"x")
    assert blobs.get_bytes("audio/u1/a.mp3") == b"abc"
    assert blobs.size("audio/u1/b.mp3") == 4
    assert blobs.list("audio") == ["audio/u1/a.mp3", "audio/u1/b.mp3"]
    assert blobs.exists("image/u2/c.png")
    assert blobs.delete("image/u2/c.png") is True
    assert not blobs.exists("image/u2/c.png")
    with pytest.raises(KeyError):
        blobs.get_bytes("image/u2/c.png")


def test_local_path_gives_a_readable_file(blobs: BlobStore) -> None:
    blobs.put_bytes("x/data.bin", b"payload")
    with blobs.local_path("x/data.bin") as path:
        assert Path(path).read_bytes() == b"payload"
    with pytest.raises(KeyError):
        with blobs.local_path("x/missing.bin"):
            pass


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../up", "a/../../b", "a//b", "a/./b", "sp ace"])
def test_keys_cannot_escape(blobs: BlobStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        blobs.put_bytes(key, b"x")


def test_put_file_copies(tmp_path: Path) -> None:
    source = tmp_path / "src.txt"
    source.write_text("hello")
    store = BlobStore(str(tmp_path / "b"))
    store.put_file("docs/src.txt", source)
    assert store.get_bytes("docs/src.txt") == b"hello"
