"""``keras.utils.get_file`` on pooch: a download into Keras' cache (``$KERAS_HOME`` or
``~/.keras``, sub-folder ``datasets`` or ``models``), checked against its hash, with a progress
bar; a file already there (a Keras user's cached copy) is used without any network access.
Offline, the error names the file, the URL and the folder to put it in. Cache paths, archive
extraction folders and arguments are Keras 3's; ``file://`` URLs are copied from disk."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.parse
import urllib.request

import pooch

__all__ = ["get_file", "cache_folder", "fetch"]


def cache_folder(cache_subdir: str = "datasets", cache_dir: str | None = None) -> str:
    """Keras' cache folder: ``cache_dir`` (else ``$KERAS_HOME``, else ``~/.keras``) joined with
    ``cache_subdir``; ``/tmp/.keras`` when the base is not writable, as Keras does."""
    base = cache_dir or os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    base = os.path.expanduser(base)
    if os.path.isdir(base) and not os.access(base, os.W_OK):
        base = os.path.join(tempfile.gettempdir(), ".keras")
    return os.path.join(base, cache_subdir)


def _copy_local(url, output_file, pooch_=None, check_only=False):
    """A pooch downloader for ``file://`` URLs (Keras' urlretrieve reads them too)."""
    source = urllib.request.url2pathname(urllib.parse.urlsplit(url).path)
    if check_only:
        return os.path.isfile(source)
    with open(source, "rb") as src:
        if isinstance(output_file, str):
            with open(output_file, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copyfileobj(src, output_file)
    return None


def _drop_hash_advice(record: logging.LogRecord) -> bool:
    """pooch's advice to pin the hash it prints is for its own users: not shown."""
    return not record.getMessage().startswith(("SHA256 hash of downloaded", "Use this value"))


def fetch(origin: str, fname: str, folder: str, known_hash: str | None, progress: bool = True):
    """``origin`` downloaded (once) to ``folder/fname`` through pooch, checked against
    ``known_hash`` ("md5:..." or "sha256:..."; None: not checked); the local path. Network
    failures raise OSError naming the file, the URL and the folder to put the file in."""
    downloader = _copy_local if origin.startswith("file:") else None
    logger = pooch.get_logger()
    logger.addFilter(_drop_hash_advice)
    try:
        return pooch.retrieve(
            origin,
            known_hash=known_hash,
            fname=fname,
            path=folder,
            progressbar=progress,
            downloader=downloader,
        )
    except ValueError as e:  # a hash mismatch (pooch names both hashes) or a bad URL
        raise ValueError(
            f"Incomplete or corrupted file detected: {fname} from {origin}: {e}"
        ) from None
    except Exception as e:  # network errors of any kind
        raise OSError(
            f"Could not download {fname} from {origin} ({type(e).__name__}: {e}). Offline, "
            f"download it elsewhere and put it in {folder}{os.sep}{fname}."
        ) from None
    finally:
        logger.removeFilter(_drop_hash_advice)


def _known_hash(file_hash, md5_hash, hash_algorithm):
    """pooch's "algorithm:digest" from Keras' arguments ("auto": 64 hex digits are sha256)."""
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    if not file_hash or ":" in file_hash:
        return file_hash or None
    if hash_algorithm == "auto":
        hash_algorithm = "sha256" if len(file_hash) == 64 else "md5"
    if hash_algorithm not in ("md5", "sha256"):
        raise ValueError(
            f"hash_algorithm must be 'auto', 'md5' or 'sha256'; got {hash_algorithm!r}"
        )
    return f"{hash_algorithm}:{file_hash}"


def _targets(fname, origin, folder, extract):
    """(file name of the download, extraction folder or None), laid out as Keras 3 does."""
    provided = fname
    fname = os.fspath(fname) if fname else os.path.basename(urllib.parse.urlsplit(origin).path)
    if not fname:
        raise ValueError(
            f"Can't parse the file name from the origin provided: '{origin}'. "
            "Please specify the `fname` argument."
        )
    if provided and os.sep in fname:
        raise ValueError(
            "Paths are no longer accepted as the `fname` argument. To specify the file's parent "
            f"directory, use the `cache_dir` argument. Received: fname={fname}"
        )
    if not extract:
        return fname, None
    if provided and "." in fname:
        return fname, os.path.join(folder, f"{fname[: fname.find('.')]}_extracted")
    return f"{fname}_archive", os.path.join(folder, fname)


def _extract(archive, extraction_dir, archive_format):
    if archive_format == "auto":
        archive_format = "zip" if archive.endswith(".zip") else "tar"
    if archive_format == "tar" or archive_format == ("tar",):
        processor = pooch.Untar(extract_dir=extraction_dir)
    elif archive_format == "zip" or archive_format == ("zip",):
        processor = pooch.Unzip(extract_dir=extraction_dir)
    else:
        raise ValueError(f"archive_format must be 'auto', 'tar' or 'zip'; got {archive_format!r}")
    processor(archive, "fetch", None)  # extracts only what is missing from the folder
    return extraction_dir


def get_file(
    fname: str | None = None,
    origin: str | None = None,
    untar: bool = False,
    md5_hash: str | None = None,
    file_hash: str | None = None,
    cache_subdir: str = "datasets",
    hash_algorithm: str = "auto",
    extract: bool = False,
    archive_format: str = "auto",
    cache_dir: str | None = None,
    force_download: bool = False,
    progress: bool = True,
) -> str:
    """The local path of ``origin``'s file, downloaded once into
    ``cache_dir/cache_subdir/fname`` (``~/.keras/datasets`` by default), as
    ``keras.utils.get_file``. ``file_hash``: hex digest (64 characters: sha256, else md5, for
    ``hash_algorithm="auto"``) or "md5:..."/"sha256:..."; a cached file with another hash is
    downloaded again. ``extract`` (or ``untar``): the archive is unpacked and the folder
    returned (``fname_extracted`` next to the archive, as Keras 3)."""
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    known_hash = _known_hash(file_hash, md5_hash, hash_algorithm)
    folder = cache_folder(cache_subdir, cache_dir)
    target, extraction_dir = _targets(fname, origin, folder, extract or untar)
    if force_download and os.path.exists(os.path.join(folder, target)):
        os.remove(os.path.join(folder, target))
    path = fetch(origin, target, folder, known_hash, progress)
    if extraction_dir is None:
        return path
    return _extract(path, extraction_dir, "tar" if untar else archive_format)
