"""``keras.utils.get_file`` on pooch: a download into Keras' cache (``$KERAS_HOME`` or
``~/.keras``, sub-folder ``datasets`` or ``models``), checked against its hash, with a progress
bar; a file already there (a Keras user's cached copy) is used without any network access.
Offline, the error names the file, the URL and the folder to put it in."""

from __future__ import annotations

import os

import pooch

__all__ = ["get_file", "cache_folder"]


def cache_folder(cache_subdir: str = "datasets", cache_dir: str | None = None) -> str:
    base = cache_dir or os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return os.path.join(os.path.expanduser(base), cache_subdir)


def get_file(
    fname: str | None = None,
    origin: str | None = None,
    file_hash: str | None = None,
    cache_subdir: str = "datasets",
    cache_dir: str | None = None,
    extract: bool = False,
    progress: bool = True,
    **kwargs,
) -> str:
    """The local path of ``origin``'s file (downloaded once into the cache). ``file_hash`` is
    ``"md5:..."``/``"sha256:..."`` or a bare hex digest (64 characters: sha256, else md5, as
    Keras reads it)."""
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    for key in ("md5_hash", "hash_algorithm"):
        kwargs.pop(key, None)
    if kwargs:
        raise TypeError(f"Unexpected arguments to get_file: {sorted(kwargs)}")
    fname = fname or os.path.basename(origin.split("?")[0])
    if file_hash and ":" not in file_hash:
        file_hash = ("sha256:" if len(file_hash) == 64 else "md5:") + file_hash
    folder = cache_folder(cache_subdir, cache_dir)
    processor = pooch.Untar() if extract and fname.endswith((".tar.gz", ".tgz")) else None
    if extract and processor is None and fname.endswith(".zip"):
        processor = pooch.Unzip()
    try:
        path = pooch.retrieve(
            origin,
            known_hash=file_hash,
            fname=fname,
            path=folder,
            processor=processor,
            progressbar=progress,
        )
    except ValueError:
        raise  # a hash mismatch: pooch names the file and both hashes
    except Exception as e:  # network errors of any kind
        raise OSError(
            f"Could not download {fname} from {origin} ({type(e).__name__}: {e}). Offline, "
            f"download it elsewhere and put it in {folder}{os.sep}{fname}."
        ) from None
    if isinstance(path, list):
        return os.path.dirname(path[0]) if path else folder
    return path
