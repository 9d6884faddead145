"""SAM2 / SAM2.1 Hiera-Tiny weights by name (spec section 2): ``--pretrained sam2.1_hiera_tiny``.

A name resolves to the URL Meta publishes for that checkpoint (``checkpoints/download_ckpts.sh`` and the
README of facebookresearch/sam2); the file is downloaded once into the torch hub cache,
``torch.hub.get_dir()/checkpoints/<file name of the URL>`` (``$TORCH_HOME/hub/checkpoints`` when TORCH_HOME is
set, else ``~/.cache/torch/hub/checkpoints``), the same place ``torch.hub.load_state_dict_from_url`` uses. A
local path is used as it is.

What is verified, honestly:

- Meta publishes no checksums for these files, and this package records neither a size nor a SHA-256 that it
  could not check itself, so ``SAM2_CHECKPOINTS`` holds ``size=None`` and ``sha256=None``. When an entry does
  hold them (a maintainer who verified a download, or a test), the size and the SHA-256 of the download and
  of a cached file are checked and a mismatch is refused (and a bad download removed).
- Without a known hash: the transfer must deliver the server's ``Content-Length`` in full (a truncated
  download is refused), and the strict loader (:func:`irsam2.models.load_sam2_checkpoint`) then checks every
  trunk key and shape, which rejects anything that is not a Hiera-Tiny SAM2 checkpoint. The SHA-256 of each
  download is logged so that it can be pinned.

Downloads stream into a temporary file in the cache folder and are renamed into place only when complete and
verified (atomic), so an interrupted or refused download leaves no file behind. Offline, the error prints the
URL and the path where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from irsam2.utils import UserError, logger

# Meta's published URLs (facebookresearch/sam2, checkpoints/download_ckpts.sh): SAM 2.1 under 092824/, SAM 2
# under 072824/. size / sha256: None = not published and not verified here (see the module docstring).
SAM2_CHECKPOINTS: dict[str, dict[str, Any]] = {
    "sam2.1_hiera_tiny": {
        "url": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt",
        "size": None,
        "sha256": None,
    },
    "sam2_hiera_tiny": {
        "url": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_tiny.pt",
        "size": None,
        "sha256": None,
    },
}

NO_WEIGHTS = "none"  # `pretrained: none`: train the trunk from scratch on purpose (no warning)
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def checkpoint_dir() -> Path:
    """The torch hub cache's ``checkpoints`` folder (honours TORCH_HOME and ``torch.hub.set_dir``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def known_name(spec: str) -> str | None:
    """The table key that ``spec`` names (``sam2.1_hiera_tiny`` or ``sam2.1_hiera_tiny.pt``), else None."""
    name = spec[:-3] if spec.endswith(".pt") else spec
    return name if name in SAM2_CHECKPOINTS else None


def is_no_weights(spec: str | os.PathLike | None) -> bool:
    """``None`` or the string ``"none"`` (any case): no SAM2 weights."""
    return spec is None or (isinstance(spec, str) and spec.strip().lower() == NO_WEIGHTS)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_file(path: Path, entry: dict[str, Any], what: str) -> None:
    """Size and SHA-256 against the entry's known values, when it has them."""
    size, sha = entry.get("size"), entry.get("sha256")
    if size is not None and path.stat().st_size != int(size):
        raise UserError(
            f"{what}: {path.stat().st_size} bytes, expected {int(size)} (incomplete or another file)"
        )
    if sha is not None:
        got = _sha256(path)
        if got != str(sha).lower():
            raise UserError(f"{what}: SHA-256 {got} differs from the expected {str(sha).lower()} (corrupt)")


def download(url: str, dest: Path, entry: dict[str, Any] | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through a temporary file in the same folder, verified, then renamed."""
    entry = entry or {}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    manual = (
        f"Download it elsewhere and put it at {dest}, or pass the file's path to --pretrained "
        f"(model.pretrained)."
    )
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(url, timeout=_TIMEOUT_S)
            except urllib.error.HTTPError as e:
                raise UserError(f"cannot download {url}: HTTP {e.code} {e.reason}. {manual}") from None
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                raise UserError(f"cannot download {url} (offline? {reason}). {manual}") from None
            with resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else entry.get("size")
                from tqdm.auto import tqdm

                sha = hashlib.sha256()
                got = 0
                logger.info("downloading %s to %s", url, dest)
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=None if progress else True
                ) as bar:
                    try:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            sha.update(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
                    except (OSError, http.client.HTTPException) as e:  # IncompleteRead, reset, timeout
                        raise UserError(
                            f"download of {url} interrupted after {got} bytes ({e!r}). {manual}"
                        ) from None
            if length and length.isdigit() and got != int(length):
                raise UserError(f"download of {url} interrupted: {got} of {int(length)} bytes. {manual}")
            out.flush()
            os.fsync(out.fileno())
        _check_file(tmp, entry, f"download of {url}")
        os.replace(tmp, dest)
        logger.info("saved %s (%d bytes, SHA-256 %s)", dest, got, sha.hexdigest())
        return dest
    finally:
        if tmp.exists():  # interrupted, refused or failed: leave nothing behind
            tmp.unlink()


def resolve_pretrained(spec: str | os.PathLike, progress: bool = True) -> Path:
    """The local file of a ``--pretrained`` value: an existing path as it is, or a known name
    (``sam2.1_hiera_tiny``, ``sam2_hiera_tiny``, with or without ``.pt``) from the hub cache, downloading it
    on first use. Anything else is a :class:`UserError` listing the known names."""
    path = Path(spec)
    if path.is_file():
        return path
    name = known_name(str(spec)) if isinstance(spec, str) and os.sep not in str(spec) else None
    if name is None:
        raise UserError(
            f"--pretrained {spec}: no such file, and not a known SAM2 checkpoint name "
            f"({', '.join(SAM2_CHECKPOINTS)}); use 'none' to train the trunk from scratch"
        )
    entry = SAM2_CHECKPOINTS[name]
    url = entry["url"]
    dest = checkpoint_dir() / url.rsplit("/", 1)[-1]
    if dest.is_file():
        _check_file(dest, entry, f"cached {dest} (delete it to download again)")
        return dest
    return download(url, dest, entry, progress=progress)


__all__ = [
    "NO_WEIGHTS",
    "SAM2_CHECKPOINTS",
    "checkpoint_dir",
    "download",
    "is_no_weights",
    "known_name",
    "resolve_pretrained",
]
