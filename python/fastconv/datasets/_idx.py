"""IDX files (the MNIST family's format): reading, finding, downloading with a hash check.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the data in C order. The MNIST family's files are
distributed gzipped; both forms are read (gzip is recognised by its own magic bytes, not by the
file name).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pooch

from ..utils import downloads

# IDX type code -> numpy dtype (multi-byte types are big-endian)
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

# The four files of an MNIST-family data set: (role, file name as distributed).
FILES = (
    ("x_train", "train-images-idx3-ubyte.gz"),
    ("y_train", "train-labels-idx1-ubyte.gz"),
    ("x_test", "t10k-images-idx3-ubyte.gz"),
    ("y_test", "t10k-labels-idx1-ubyte.gz"),
)
FILE_NAMES = tuple(name for _, name in FILES)

SYSTEM_DATA_DIRS = ("/usr/share/datasets",)  # Debian's dataset-* packages install here


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    return data


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file; ``name`` is used in error messages."""
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(
            f"{name}: bad IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x} "
            "(expected 0x000008nn..0x00000Enn)"
        )
    dtype = _IDX_TYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{name}: IDX file {what}: header says shape {dims} ({expected} bytes in all), "
            f"file has {len(data)} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a NumPy array, checking magic number and size."""
    path = Path(path)
    data = _read_bytes(path)
    arr = parse_idx(data, str(path))
    if expected_magic is not None:
        magic = int.from_bytes(data[:4], "big")
        if magic != expected_magic:
            raise ValueError(
                f"{path}: magic number {magic} (0x{magic:08x}), expected {expected_magic} "
                f"(0x{expected_magic:08x})"
            )
    return arr


def _candidates(directory: Path, gz_name: str):
    stem = gz_name[: -len(".gz")]  # train-images-idx3-ubyte
    dotted = stem.replace("-idx", ".idx")  # train-images.idx3-ubyte (as some archives unpack)
    return [directory / gz_name, directory / stem, directory / (dotted + ".gz"), directory / dotted]


def _find_in(directory: Path):
    """Return {role: path} if ``directory`` holds all four files, else None."""
    found = {}
    for role, gz_name in FILES:
        for candidate in _candidates(directory, gz_name):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            return None
    return found


def search_dirs(names, path=None):
    """Directories searched, in order: ``path``, ``$FASTCONV_DATA/<name>``,
    ``~/.fastconv/datasets/<name>``, Keras' cache ``~/.keras/datasets/<name>`` (``$KERAS_HOME``;
    where ``keras.datasets.fashion_mnist`` keeps its gz files), ``/usr/share/datasets/<name>``,
    with every spelling in ``names`` (e.g. fashion_mnist and fashion-mnist)."""
    dirs = []
    if path is not None:
        dirs.append(Path(path).expanduser())
    env = os.environ.get("FASTCONV_DATA")
    bases = ([Path(env).expanduser()] if env else []) + [cache_root(), keras_cache()]
    bases += [Path(d) for d in SYSTEM_DATA_DIRS]
    for base in bases:
        for n in names:
            dirs.append(base / n)
    return dirs


def keras_cache() -> Path:
    """Keras' data set cache, ``~/.keras/datasets`` (``$KERAS_HOME/datasets``)."""
    return Path(downloads.cache_folder("datasets"))


def read_keras_npz(path, num_classes: int = 10):
    """``((x_train, y_train), (x_test, y_test))`` from a file in the layout of Keras'
    ``mnist.npz`` (arrays x_train, y_train, x_test, y_test; no pickled objects)."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with npz:
            arrays = {role: npz[role] for role, _ in FILES if role in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:  # pickles too
        raise ValueError(f"{path}: not a readable .npz file of arrays ({e})") from None
    missing = [role for role, _ in FILES if role not in arrays]
    if missing:
        raise ValueError(f"{path}: no array named {', '.join(missing)} (Keras' mnist.npz layout)")
    for role, a in arrays.items():
        if a.dtype != np.uint8:
            raise ValueError(f"{path}: {role} has dtype {a.dtype}, expected uint8")
    _check_arrays(arrays, dict.fromkeys(arrays, f"{path}:"), num_classes)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _check_arrays(arrays, names, num_classes):
    for xr, yr in (("x_train", "y_train"), ("x_test", "y_test")):
        x, y = arrays[xr], arrays[yr]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"{names[xr]} {xr} of shape {x.shape}, expected (n, 28, 28)")
        if y.ndim != 1:
            raise ValueError(f"{names[yr]} {yr} of shape {y.shape}, expected (n,)")
        if len(x) != len(y):
            raise ValueError(
                f"{names[xr]} holds {len(x)} images but {names[yr]} holds {len(y)} labels"
            )
        if len(y) and int(y.max()) >= num_classes:
            raise ValueError(f"{names[yr]}: label {int(y.max())} out of range 0..{num_classes - 1}")


def _keras_npz_file(path, npz_name):
    """The Keras-layout .npz to read, or None: ``path`` itself when it names a .npz file (as
    Keras' ``load_data(path="mnist.npz")``, relative to Keras' cache), else Keras' cached
    ``npz_name``."""
    if path is not None and str(path).endswith(".npz"):
        p = Path(path).expanduser()
        return p if p.is_absolute() or p.is_file() else keras_cache() / p
    if npz_name is not None and (keras_cache() / npz_name).is_file():
        return keras_cache() / npz_name
    return None


def cache_root() -> Path:
    return Path(os.path.expanduser("~")) / ".fastconv" / "datasets"


def sha256_file(path) -> str:
    return pooch.file_hash(str(path), alg="sha256")


def download(url: str, dest: Path, sha256: str | None, raw_sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` through pooch (the downloader of ``keras.utils.get_file``:
    a temporary file in the same folder, a progress bar, then an atomic rename).

    The file is kept only if its SHA-256 equals ``sha256`` (the published hash of the gz file)
    or, failing that, the SHA-256 of its decompressed content equals ``raw_sha256`` (a mirror
    that recompressed the same data). Otherwise it is deleted and ValueError is raised. With
    neither hash known, the caller must check the content (magic numbers and sizes) itself.
    Network failures raise OSError naming the file, the URL and the folder to put it in.
    """
    dest = Path(dest)
    path = Path(downloads.fetch(url, dest.name, str(dest.parent), known_hash=None))
    digest = sha256_file(path)
    ok = sha256 is None and raw_sha256 is None
    if not ok and sha256 is not None and digest == sha256.lower():
        ok = True
    if not ok and raw_sha256 is not None:
        try:
            raw = _read_bytes(path)
        except ValueError:
            raw = b""
        ok = hashlib.sha256(raw).hexdigest() == raw_sha256.lower()
    if not ok:
        path.unlink()
        raise ValueError(
            f"SHA-256 mismatch for {url}: got {digest}, expected {sha256}"
            + (f" (or decompressed {raw_sha256})" if raw_sha256 else "")
            + f"; the download was discarded, nothing was written to {dest}"
        )
    return path


def resolve_base_url(base_url: str | None, default: str, name: str) -> str:
    """``base_url`` argument, else $FASTCONV_DATASET_MIRROR (``{name}`` in it is replaced by the
    data set's name), else the module's default."""
    url = base_url or os.environ.get("FASTCONV_DATASET_MIRROR") or default
    url = url.replace("{name}", name)
    return url if url.endswith("/") else url + "/"


def load_mnist_family(
    name: str,
    dir_names,
    path,
    base_url: str,
    sha256: dict,
    raw_sha256: dict,
    num_classes: int = 10,
    npz_name: str | None = None,
):
    """Find (or download) and read the four IDX files of an MNIST-family data set; a Keras user's
    ``~/.keras/datasets/<npz_name>`` is read when no folder holds the IDX files."""
    npz_path = _keras_npz_file(path, None)
    if npz_path is not None:  # load_data(path="mnist.npz"), as Keras is called
        return read_keras_npz(npz_path, num_classes)
    dirs = search_dirs(dir_names, path)
    files = None
    for d in dirs:
        files = _find_in(d)
        if files is not None:
            break
    npz_path = _keras_npz_file(path, npz_name) if files is None else None
    if npz_path is not None:
        return read_keras_npz(npz_path, num_classes)
    if files is None:
        target = Path(path).expanduser() if path is not None else cache_root() / dir_names[0]
        files = {}
        for role, gz_name in FILES:
            dest = target / gz_name
            if not dest.is_file():
                try:
                    download(base_url + gz_name, dest, sha256.get(gz_name), raw_sha256.get(gz_name))
                except OSError as e:
                    searched = ", ".join(str(d) for d in dirs)
                    raise OSError(
                        f"{name}: the IDX files are not in any of {searched}, and {e}. Put the "
                        "four files in one of those folders, pass load_data(path=...), or set "
                        "FASTCONV_DATA (or FASTCONV_DATASET_MIRROR for another download site)."
                    ) from e
            files[role] = dest

    arrays = {
        role: read_idx(files[role], IMAGES_MAGIC if role.startswith("x") else LABELS_MAGIC)
        for role, _ in FILES
    }
    _check_arrays(arrays, {role: str(files[role]) for role in files}, num_classes)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
