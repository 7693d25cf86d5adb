#!/bin/sh
# Fault lab campaign on 3 network-namespace hosts (root only; see ARCHITECTURE.md, "Fault lab").
#   scripts/lab.sh --runs N --seed S [--fault KIND] [--mode async|on|quorum|strict[,...]] [--ttl T]
# Prints one line per run and a table at the end; logs of failed runs are kept under
# /tmp/pgbaton-lab-failures/seed-S (or --failures DIR). Exits 1 when a run failed.
set -eu
cd "$(dirname "$0")/.."
export PATH="/usr/lib/postgresql/15/bin:$PATH"
CARGO_INCREMENTAL=0 cargo build -q -p pgbaton -p pgbaton-lab
exec target/debug/pgbaton-lab "$@"
