"""unpack.py measures ``apply_layer`` against ``tar -xzf`` of the same gzip layer (issue 3).

Usage (as root, from anywhere; after scripts/setup.sh)::

    python3 bench/unpack.py [--rounds 5] [--dir DIR] [--in-process]

Two layers are built in a temporary directory under ``--dir`` (default: the system's temp
dir), from a seeded random generator so that every run sees the same bytes:

- ``small-files``: 20,000 files of 100 B to 8 KiB of word text in 400 directories;
- ``100MB``: 20 files of 2 to 8 MiB, half word text and half random bytes (like binaries).

Each round extracts each layer into a fresh directory twice, with the contestants taking
turns: ``tar --numeric-owner -xzf blob -C dir`` (root keeps owners and modes by default),
and ``apply_layer(..., whiteouts="naive")`` run by the venv's python as a subprocess, so
that its time includes the interpreter's start and ctl's imports (``--in-process`` times
the call alone, in this process). The page cache is written back (``sync``) before each
timed run, and the directories are removed outside the timings. The table gives medians,
the spread (min-max) and the ratio of ctl's median to tar's. There are no pass/fail
thresholds: these are numbers to read and to compare across changes.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
MTIME = 1_700_000_000
APPLY = (
    "import sys\n"
    "from pathlib import Path\n"
    "from ctl.archive import apply_layer\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    apply_layer(f, Path(sys.argv[2]), whiteouts='naive')\n"
)


class Text:
    """Text makes word text (gzip shrinks it about 3x) from a seeded generator, quickly."""

    def __init__(self, rng: random.Random) -> None:
        letters = b"etaoinshrdlucmfwypvbgkjqxz"
        words = [bytes(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(4000)]
        self.rng = rng
        self.pool = b" ".join(rng.choices(words, k=700_000))

    def make(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            start = self.rng.randrange(len(self.pool) - 4096)
            out += self.pool[start : start + self.rng.randint(512, 4096)]
        return bytes(out[:size])


def add(tar: tarfile.TarFile, name: str, data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    else:
        info.mode = 0o644
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def build_small_files(out: Path, rng: random.Random) -> None:
    text = Text(rng)
    with GzipWriter(out) as gz, tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as t:
        for d in range(400):
            add(t, f"usr/share/pkg{d:03d}")
            for f in range(50):
                add(t, f"usr/share/pkg{d:03d}/file{f:02d}.txt", text.make(rng.randint(100, 8192)))


def build_large(out: Path, rng: random.Random) -> None:
    text = Text(rng)
    with GzipWriter(out) as gz, tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as t:
        add(t, "opt/big")
        for i in range(20):
            size = rng.randint(2 << 20, 8 << 20)
            data = rng.randbytes(size) if i % 2 else text.make(size)
            add(t, f"opt/big/part{i:02d}.bin", data)


class GzipWriter(io.RawIOBase):
    """GzipWriter is a write-only gzip file (level 6, as docker and containerd write layers)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, 31)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._file.write(self._deflate.compress(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.write(self._deflate.flush())
            self._file.close()
        super().close()


def count_files(top: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(top))


def timed(run: list[str] | None, call: tuple[Path, Path] | None) -> float:
    os.sync()
    start = time.perf_counter()
    if run is not None:
        subprocess.run(run, check=True)
    else:
        assert call is not None
        from ctl.archive import apply_layer

        with open(call[0], "rb") as f:
            apply_layer(f, call[1], whiteouts="naive")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to build and extract")
    parser.add_argument("--in-process", action="store_true", help="time apply_layer alone")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: both extractors keep owners, which needs root")
    sys.path.insert(0, str(REPO))
    python = str(VENV_PYTHON if VENV_PYTHON.exists() else sys.executable)
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + env_path if env_path else "")

    with tempfile.TemporaryDirectory(prefix="ctl-bench-unpack-", dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        rng = random.Random(20240607)
        layers = {"small-files": tmp / "small.tar.gz", "100MB": tmp / "large.tar.gz"}
        started = time.perf_counter()
        build_small_files(layers["small-files"], rng)
        build_large(layers["100MB"], rng)
        print(f"built the layers in {time.perf_counter() - started:.1f}s under {tmp}")

        how = "in-process call" if args.in_process else f"{Path(python).name} subprocess"
        contestants = ["tar -xzf", f"ctl apply_layer ({how})"]
        times: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for layer, blob in layers.items():
                for who in contestants if round_ % 2 == 0 else reversed(contestants):
                    out = tmp / "out"
                    out.mkdir()
                    if who.startswith("tar"):
                        cmd = ["tar", "--numeric-owner", "-xzf", str(blob), "-C", str(out)]
                        took = timed(cmd, None)
                    elif args.in_process:
                        took = timed(None, (blob, out))
                    else:
                        took = timed([python, "-c", APPLY, str(blob), str(out)], None)
                    if round_ == 0 and who.startswith("tar"):
                        print(
                            f"{layer}: {blob.stat().st_size / 1e6:.1f} MB gzip, "
                            f"{count_files(out)} files"
                        )
                    times.setdefault((layer, who), []).append(took)
                    shutil.rmtree(out)

        print(f"\n{args.rounds} rounds, medians (min-max) in seconds")
        for layer in layers:
            floor = statistics.median(times[(layer, contestants[0])])
            for who in contestants:
                got = times[(layer, who)]
                median = statistics.median(got)
                print(
                    f"{layer:12} {who:34} {median:7.3f}  ({min(got):.3f}-{max(got):.3f})"
                    f"  x{median / floor:.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
