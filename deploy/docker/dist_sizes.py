"""Bytes each installed distribution takes in this environment, its bytecode included.

Run inside an image (scripts/test-image prints it for the runtime image):
    podman run --rm -i IMAGE python - < deploy/docker/dist_sizes.py
Each file listed in a distribution's RECORD counts for it, with the `.pyc` files compiled from
its `.py` files (uv compiles them at install and does not list them). Files deleted after
install (the dependencies' tests) count for nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import Distribution, distributions
from pathlib import Path

MB = 1_000_000


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _bytecode(source: Path) -> list[Path]:
    cached = Path(importlib.util.cache_from_source(str(source)))
    return [p for p in (cached, *cached.parent.glob(f"{source.stem}.*.opt-*.pyc")) if p != source]


def distribution_bytes(dist: Distribution) -> tuple[int, int]:
    """(files, bytecode) bytes of one distribution."""
    files = bytecode = 0
    for entry in dist.files or []:
        path = Path(str(dist.locate_file(entry)))
        if path.suffix == ".pyc":
            continue
        files += _size(path)
        if path.suffix == ".py":
            bytecode += sum(_size(p) for p in _bytecode(path))
    return files, bytecode


def main() -> int:
    rows = sorted(
        ((dist.metadata["Name"], *distribution_bytes(dist)) for dist in distributions()),
        key=lambda row: -(row[1] + row[2]),
    )
    files_total, bytecode_total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'distribution':32} {'MB':>7} {'of it .pyc':>10}")
    for name, files, bytecode in [*rows, (f"all ({len(rows)})", files_total, bytecode_total)]:
        print(f"{name:32} {(files + bytecode) / MB:7.1f} {bytecode / MB:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
