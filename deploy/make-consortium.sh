#!/bin/sh
# Generate the 4-agency consortium that deploy/compose.yaml runs: one genesis, one node
# directory per validator (consensus key, TLS identity, config, genesis copy, peer certs)
# and the trustee keys. Validator i is reachable by its peers at container host v<i>,
# transport port 7000+2i; its REST API listens on 7001+2i.
#
# Usage: deploy/make-consortium.sh [OUT_DIR]        (default: deploy/consortium)
# Environment: IMI (the imi command, default "imi"), CHAIN_ID (default imi-consortium).
#
# This is a bootstrap for a test consortium on one machine: every key is generated here.
# For agencies on separate hosts, follow the genesis ceremony in docs/deploy.md instead.
set -eu

OUT="${1:-$(dirname "$0")/consortium}"
IMI="${IMI:-imi}"
CHAIN_ID="${CHAIN_ID:-imi-consortium}"

if [ -e "$OUT/genesis.json" ]; then
    echo "error: $OUT/genesis.json exists; remove $OUT or pick another directory" >&2
    exit 1
fi

$IMI genesis new --dir "$OUT" --validators 4 --trustees 3 --threshold 2 \
    --chain-id "$CHAIN_ID" --base-port 7000 \
    --host v0 --host v1 --host v2 --host v3

cat <<NOTE

Trustee keys are in $OUT/trustees/: move them offline now (they admit validators and issuers).
The containers run as uid 10001; give them the node directories before 'docker compose up':
    sudo chown -R 10001:10001 $OUT/validators
Publish the genesis hash to every agency and check it out of band:
    $(sed -n 's/.*"hash": "\([0-9a-f]*\)".*/\1/p' "$OUT/genesis.json" | tail -n 1)
NOTE
