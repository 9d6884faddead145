"""SAM2 weights by name (irsam2.models.hub): served from a local http.server on 127.0.0.1, never the internet.

Download into the torch hub cache, cache hit without a second request, a corrupt download (bad SHA-256)
refused and removed, an interrupted download leaving nothing behind, a clear offline error; and the training
engine's warning when it runs without SAM2 weights."""

from __future__ import annotations

import hashlib
import io
import logging
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from engine_helpers import tiny
from irsam2.models import create_model, hub
from irsam2.utils import UserError


def _official_checkpoint_bytes() -> bytes:
    """A SAM2 checkpoint in Meta's key layout: ``{"model": {"image_encoder.trunk.<key>": ...}}`` plus some
    keys outside the trunk (blocks 0-9 only, which keeps the file small; the loader ignores stage 4)."""
    torch.manual_seed(7)
    trunk = create_model("irsam2_t_base").trunk
    sd = {f"image_encoder.trunk.{k}": v.clone() for k, v in trunk.state_dict().items()}
    sd["sam_mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    sd["no_mem_embed"] = torch.randn(1, 1, 256)
    buf = io.BytesIO()
    torch.save({"model": sd}, buf)
    return buf.getvalue()


class _Server:
    """Serves ``files`` at ``/<name>``; ``/short/<name>`` announces the full length and stops halfway."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests[self.path] += 1
                short = self.path.startswith("/short/")
                data = outer.files.get(self.path.removeprefix("/short"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if short else data)
                if short:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def ckpt_bytes() -> bytes:
    return _official_checkpoint_bytes()


@pytest.fixture
def server(ckpt_bytes: bytes) -> Iterator[_Server]:
    s = _Server({"/092824/sam2.1_hiera_tiny.pt": ckpt_bytes, "/bytes.pt": b"x" * 300_000})
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert hub.checkpoint_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    return hub.checkpoint_dir()


def _point(monkeypatch: pytest.MonkeyPatch, url: str, **entry: object) -> None:
    monkeypatch.setitem(
        hub.SAM2_CHECKPOINTS, "sam2.1_hiera_tiny", {"url": url, "size": None, "sha256": None, **entry}
    )


def test_meta_urls():
    # facebookresearch/sam2, checkpoints/download_ckpts.sh
    assert hub.SAM2_CHECKPOINTS["sam2.1_hiera_tiny"]["url"] == (
        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt"
    )
    assert hub.SAM2_CHECKPOINTS["sam2_hiera_tiny"]["url"] == (
        "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_tiny.pt"
    )


def test_download_once_then_cache_hit_and_strict_load(
    server: _Server, cache: Path, ckpt_bytes: bytes, monkeypatch: pytest.MonkeyPatch
):
    path = "/092824/sam2.1_hiera_tiny.pt"
    sha = hashlib.sha256(ckpt_bytes).hexdigest()
    _point(monkeypatch, server.base + path, size=len(ckpt_bytes), sha256=sha)
    model = create_model("irsam2_t_base", pretrained="sam2.1_hiera_tiny")
    dest = cache / "sam2.1_hiera_tiny.pt"
    assert dest.read_bytes() == ckpt_bytes and server.requests[path] == 1
    assert sorted(p.name for p in cache.iterdir()) == ["sam2.1_hiera_tiny.pt"]  # no temporary file left
    torch.manual_seed(7)
    expected = create_model("irsam2_t_base").trunk.state_dict()
    got = model.trunk.state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected) and model.trunk_frozen

    # cache hit: no second request, also with the ".pt" spelling; the cached file is checked again
    assert hub.resolve_pretrained("sam2.1_hiera_tiny.pt") == dest
    create_model("irsam2_t_base", pretrained="sam2.1_hiera_tiny")
    assert server.requests[path] == 1
    dest.write_bytes(ckpt_bytes[:-1] + bytes([ckpt_bytes[-1] ^ 1]))  # damaged in the cache: refused
    with pytest.raises(UserError, match="cached .*sam2.1_hiera_tiny.pt"):
        hub.resolve_pretrained("sam2.1_hiera_tiny")


def test_download_without_a_known_hash_checks_the_length(
    server: _Server, cache: Path, ckpt_bytes: bytes, monkeypatch: pytest.MonkeyPatch
):
    _point(monkeypatch, server.base + "/092824/sam2.1_hiera_tiny.pt")  # as shipped: no size, no hash
    assert hub.resolve_pretrained("sam2.1_hiera_tiny").read_bytes() == ckpt_bytes


def test_corrupt_download_is_refused_and_removed(
    server: _Server, cache: Path, monkeypatch: pytest.MonkeyPatch
):
    _point(monkeypatch, server.base + "/bytes.pt", sha256="0" * 64)
    with pytest.raises(UserError, match="SHA-256 .* differs"):
        hub.resolve_pretrained("sam2.1_hiera_tiny")
    assert server.requests["/bytes.pt"] == 1
    assert list(cache.iterdir()) == []
    _point(monkeypatch, server.base + "/bytes.pt", size=123)
    with pytest.raises(UserError, match="300000 bytes, expected 123"):
        hub.resolve_pretrained("sam2.1_hiera_tiny")
    assert list(cache.iterdir()) == []


def test_interrupted_download_leaves_no_file(server: _Server, cache: Path, monkeypatch: pytest.MonkeyPatch):
    _point(monkeypatch, server.base + "/short/bytes.pt")
    with pytest.raises(UserError, match="interrupted"):
        hub.resolve_pretrained("sam2.1_hiera_tiny")
    assert server.requests["/short/bytes.pt"] == 1
    assert list(cache.iterdir()) == []


def test_offline_error_prints_the_url_and_where_to_put_the_file(cache: Path, monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/092824/sam2.1_hiera_tiny.pt"
    _point(monkeypatch, url)
    with pytest.raises(UserError) as e:
        hub.resolve_pretrained("sam2.1_hiera_tiny")
    assert url in str(e.value) and str(cache / "sam2.1_hiera_tiny.pt") in str(e.value)
    assert list(cache.iterdir()) == []


def test_unknown_names_and_local_paths(tmp_path: Path):
    with pytest.raises(UserError, match="sam2.1_hiera_tiny, sam2_hiera_tiny"):
        hub.resolve_pretrained("sam2_hiera_huge")
    with pytest.raises(UserError, match="no such file"):
        hub.resolve_pretrained(str(tmp_path / "missing" / "sam2.1_hiera_tiny.pt"))
    local = tmp_path / "sam2.1_hiera_tiny.pt"
    local.write_bytes(b"local")
    assert hub.resolve_pretrained(str(local)) == local  # a local path wins over the name
    assert hub.is_no_weights(None) and hub.is_no_weights("none") and hub.is_no_weights("None")


def test_training_without_sam2_weights_warns_once_and_records_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    from irsam2.engine.config import load_config
    from irsam2.engine.trainer import NO_SAM2_WARNING, WARNINGS_TXT, Trainer

    for pretrained, warned in ((None, True), ("none", False)):
        out = tmp_path / str(pretrained)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="irsam2"):
            t = Trainer(load_config("synthetic", tiny(out, **{"model.pretrained": pretrained})))
            t.setup()
            t._open_logs()
        hits = [r for r in caplog.records if "no SAM2 weights" in r.getMessage()]
        assert len(hits) == int(warned)
        assert (out / WARNINGS_TXT).is_file() is warned
        if warned:
            text = (out / WARNINGS_TXT).read_text()
            assert NO_SAM2_WARNING in text and "far below the paper" in text
        assert not t.model_core.trunk_frozen  # from scratch either way: the trunk trains
    # a deep baseline has no SAM2 trunk: nothing to warn about
    out = tmp_path / "acm"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="irsam2"):
        t = Trainer(load_config("synthetic", tiny(out, **{"model.name": "acm", "model.pretrained": None})))
        t.setup()
        t._open_logs()
    assert not [r for r in caplog.records if "no SAM2 weights" in r.getMessage()]
    assert not (out / WARNINGS_TXT).is_file()
