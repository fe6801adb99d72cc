"""zi2zi's `.obj` files: concatenated `pickle.dump((label, image_bytes))` records.

Reading validates every record and names the file and record index of a bad one;
nothing is skipped silently. Unpickling is restricted to plain data, so an `.obj`
file cannot run code.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

from utils.errors import UserError
from utils.io import atomic_write


MAX_LABEL = 2**31 - 1  # labels index an embedding; anything larger is a corrupt or foreign record


class ObjFormatError(UserError):
    """A corrupt or foreign record in an `.obj` file."""


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: .obj records hold only "
                                     f"(int, bytes) tuples")


@dataclass(frozen=True)
class Record:
    label: int
    image_bytes: bytes
    width: int
    height: int


def check_record(obj, path, index: int) -> Record:
    """Validate one unpickled record: an (int, bytes) pair whose image is twice as wide as high."""
    where = f"{path}: record {index}"
    if not (isinstance(obj, tuple) and len(obj) == 2):
        raise ObjFormatError(f"{where} is a {type(obj).__name__}, not a (label, image_bytes) pair")
    label, data = obj
    if isinstance(label, bool) or not isinstance(label, int):
        raise ObjFormatError(f"{where}: label {label!r} is not an integer")
    if label < 0:
        raise ObjFormatError(f"{where}: label {label} is negative")
    if label > MAX_LABEL:
        raise ObjFormatError(f"{where}: label {label} is out of range (style labels are small integers, "
                             f"at most {MAX_LABEL})")
    if not isinstance(data, (bytes, bytearray)):
        raise ObjFormatError(f"{where}: image is a {type(data).__name__}, not encoded image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
    except OSError:
        raise ObjFormatError(f"{where}: the image bytes do not decode as an image") from None
    if width != 2 * height:
        raise ObjFormatError(f"{where}: image is {width}x{height}; a zi2zi pair is twice as wide "
                             f"as high (target left, source right)")
    return Record(label, bytes(data), width, height)


def _records(f, path: Path) -> Iterator[tuple[int, Record]]:
    """(offset, record) of each record of the open file `f`, validated, in order."""
    index = 0
    while True:
        offset = f.tell()
        if not f.peek(1):  # clean end of file between records
            break
        try:
            obj = _PlainDataUnpickler(f).load()
        except EOFError:
            raise ObjFormatError(f"{path}: record {index} is truncated (file ends mid-record)") from None
        except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
                UnicodeDecodeError) as err:
            if "truncated" in str(err):
                raise ObjFormatError(f"{path}: record {index} is truncated (file ends "
                                     f"mid-record)") from None
            raise ObjFormatError(f"{path}: record {index} is not a valid pickle record ({err})") from None
        yield offset, check_record(obj, path, index)
        index += 1


def existing_obj(path: str | Path, hint: str | None = None) -> Path:
    """`path` as a Path, or the one error every reader gives for a missing `.obj` (with what to do, `hint`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such .obj file" + (f"; {hint}" if hint else ""))
    return path


def iter_obj(path: str | Path) -> Iterator[Record]:
    """Records of an `.obj` file, validated, in order."""
    path = existing_obj(path)
    with open(path, "rb") as f:
        for _, record in _records(f, path):
            yield record


@dataclass(frozen=True)
class ObjIndex:
    """Where each record of an `.obj` starts, its label, and the one pair size they all share.

    Made by one streaming pass that keeps no image bytes, so reading a few chosen
    records (a sample grid) or every record in turn (building the decoded cache) never
    holds the whole file in memory.
    """
    path: Path
    labels: list[int]
    offsets: list[int]
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def decoded_bytes(self) -> int:
        """Bytes of every pair decoded to uint8 (grayscale)."""
        return len(self) * self.width * self.height

    def read(self, indices: Iterable[int]) -> Iterator[Record]:
        """The records at `indices`, in that order, read from the file one at a time."""
        with open(self.path, "rb") as f:
            for i in indices:
                f.seek(self.offsets[i])
                try:
                    obj = _PlainDataUnpickler(f).load()
                except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
                        UnicodeDecodeError):
                    raise ObjFormatError(f"{self.path}: record {i} changed since the file was indexed; "
                                         f"was it rewritten during the run?") from None
                yield check_record(obj, self.path, i)


def scan_obj(path: str | Path) -> ObjIndex:
    """Index an `.obj` in one streaming pass: every record validated, all pairs one size."""
    path = existing_obj(path)
    labels, offsets, first = [], [], None
    with open(path, "rb") as f:
        for index, (offset, record) in enumerate(_records(f, path)):
            if first is None:
                first = record
            elif (record.width, record.height) != (first.width, first.height):
                raise ObjFormatError(f"{path}: record {index} is {record.width}x{record.height} but record 0 is "
                                     f"{first.width}x{first.height}; every pair of one .obj must be one size: "
                                     f"render them at one --canvas_size and package again")
            labels.append(record.label)
            offsets.append(offset)
    if first is None:
        raise ObjFormatError(f"{path}: the file holds no records")
    return ObjIndex(path, labels, offsets, first.width, first.height)


def read_obj(path: str | Path) -> list[Record]:
    records = list(iter_obj(path))
    if not records:
        raise ObjFormatError(f"{path}: the file holds no records")
    return records


def write_obj(path: str | Path, records: Iterable[tuple[int, bytes]]) -> int:
    """Write records atomically (temporary file, then rename); returns how many."""
    count = 0

    def dump(f):
        nonlocal count
        for label, data in records:
            pickle.dump((int(label), bytes(data)), f)
            count += 1
    atomic_write(path, dump)
    return count


def encode_image(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=95) if fmt == "JPEG" else img.save(buf, format=fmt)
    return buf.getvalue()
