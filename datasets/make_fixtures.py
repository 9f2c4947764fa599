#!/usr/bin/env python3
"""Make the committed fixtures in datasets/fixtures/ from the fetched datasets (deterministic).

    crowdout data fetch fashion-mnist && crowdout data fetch adult   # or datasets/fetch.sh NAME
    python3 datasets/make_fixtures.py [DATA_DIR]                     # default $CROWDOUT_DATA or datasets/cache

fashion-mnist-mini/: the first 100 training and the first 30 test images of each of the 10 classes
  of Fashion-MNIST, kept in file order (1000 + 300 images), as gzipped IDX files with the canonical
  names. gzip uses level 9 and mtime 0, but only the decompressed bytes are pinned.
adult-mini/: the first 300 lines of adult.data, and the junk first line plus the next 150 lines of
  adult.test, byte for byte (so rows with '?' and the trailing '.' labels are kept).
Then the fixtures' decompressed sha256 replace their lines in datasets/checksums.sha256.
Standard library only.
"""
import gzip, hashlib, os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CROWDOUT_DATA") or os.path.join(os.getcwd(), "datasets", "cache")
OUT = os.path.join(HERE, "fixtures")
PINS = os.path.join(HERE, "checksums.sha256")
TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 30
ADULT_TRAIN_LINES, ADULT_TEST_ROWS = 300, 150


def read(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                b = f.read()
            return gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b
    sys.exit(f"make_fixtures.py: {path}(.gz) not found; fetch the dataset first")


def idx(b, ndim):
    assert b[:4] == bytes([0, 0, 8, ndim]), "bad IDX magic"
    dims = struct.unpack(">" + "I" * ndim, b[4:4 + 4 * ndim])
    return dims, b[4 + 4 * ndim:]


def write_gz(path, data):
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as g:
            g.write(data)


pins = {}
src = os.path.join(DATA, "fashion-mnist")
dst = os.path.join(OUT, "fashion-mnist-mini")
os.makedirs(dst, exist_ok=True)
for part, per_class in (("train", TRAIN_PER_CLASS), ("t10k", TEST_PER_CLASS)):
    (n, r, c), px = idx(read(os.path.join(src, f"{part}-images-idx3-ubyte")), 3)
    (nl,), lab = idx(read(os.path.join(src, f"{part}-labels-idx1-ubyte")), 1)
    assert n == nl
    seen = [0] * 10
    keep = []
    for i, l in enumerate(lab):
        if seen[l] < per_class:
            seen[l] += 1
            keep.append(i)
    imgs = struct.pack(">IIII", 0x803, len(keep), r, c) + b"".join(px[i * r * c:(i + 1) * r * c] for i in keep)
    labs = struct.pack(">II", 0x801, len(keep)) + bytes(lab[i] for i in keep)
    for name, data in ((f"{part}-images-idx3-ubyte", imgs), (f"{part}-labels-idx1-ubyte", labs)):
        write_gz(os.path.join(dst, name + ".gz"), data)
        pins[f"fashion-mnist-mini/{name}"] = hashlib.sha256(data).hexdigest()

src = os.path.join(DATA, "adult")
dst = os.path.join(OUT, "adult-mini")
os.makedirs(dst, exist_ok=True)
for name, n in (("adult.data", ADULT_TRAIN_LINES), ("adult.test", ADULT_TEST_ROWS + 1)):
    lines = read(os.path.join(src, name)).split(b"\n")[:n]
    data = b"\n".join(lines) + b"\n"
    with open(os.path.join(dst, name), "wb") as f:
        f.write(data)
    pins[f"adult-mini/{name}"] = hashlib.sha256(data).hexdigest()

with open(PINS) as f:
    kept = [l for l in f.read().splitlines() if not any(l.endswith("  " + k) for k in pins)]
with open(PINS, "w") as f:
    f.write("\n".join(kept + [f"{h}  {k}" for k, h in pins.items()]) + "\n")
for k, h in pins.items():
    print(h, k)
