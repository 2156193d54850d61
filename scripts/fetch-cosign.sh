#!/bin/sh
# Install the real cosign (for interop tests) from Debian's next release without adding a permanent apt
# source (docs/signatures.md §6): a throw-away one-line sources list for the suite, built from the
# archive URI this host already uses, private apt lists and cache, `apt-get download`, `dpkg -x`, and
# only usr/bin/cosign copied to the destination. apt checks the package against the signed archive
# metadata with the keyring the host already trusts.
#
# usage: scripts/fetch-cosign.sh [DEST_DIR]     (default /opt/bacon-test/cosign; the binary is DEST_DIR/cosign)
# env:   COSIGN_SUITE (default trixie)
#
# Idempotent: does nothing when DEST_DIR/cosign already runs.
set -eu

DEST=${1:-/opt/bacon-test/cosign}
SUITE=${COSIGN_SUITE:-trixie}

if [ -x "$DEST/cosign" ] && "$DEST/cosign" version >/dev/null 2>&1; then
    echo "fetch-cosign: $DEST/cosign is already installed"
    exit 0
fi

# The archive URI of the host's main Debian source: never a hard-coded host.
URI=$("$(dirname "$0")/archive-uri")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/pkg"
printf 'deb %s %s main\n' "$URI" "$SUITE" >"$WORK/sources.list"

set -- -o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null \
       -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache" -o APT::Sandbox::User=root
echo "fetch-cosign: apt-get update for $SUITE (private lists, nothing added to the host's sources)"
apt-get -q "$@" update >"$WORK/update.log" 2>&1 || { cat "$WORK/update.log" >&2; exit 1; }
(cd "$WORK/pkg" && apt-get -q "$@" download cosign)
deb=$(ls "$WORK/pkg"/cosign_*.deb)
dpkg -x "$deb" "$WORK/root"

mkdir -p "$DEST"
install -m 0755 "$WORK/root/usr/bin/cosign" "$DEST/cosign.tmp"
mv -f "$DEST/cosign.tmp" "$DEST/cosign"
echo "fetch-cosign: installed usr/bin/cosign from $(basename "$deb") at $DEST/cosign"
