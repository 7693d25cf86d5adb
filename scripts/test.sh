#!/usr/bin/env bash
# Install what the tests need (when run as root on Debian), then run every test.
#
#   ./scripts/test.sh            # the whole suite (what CI runs; about 12 minutes cold)
#   ./scripts/test.sh --long     # the long tier: the tests marked #[ignore = "long tier ..."]
#                                  (more crashes, every bootstrap moment), a 2,000-seed
#                                  simulator campaign and a 10-run fault lab campaign
#   ./scripts/test.sh -p pgbaton-core   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

long=0
if [ "${1:-}" = "--long" ]; then
  long=1
  shift
fi

need=()
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The fault lab (crates/lab): DROP rules and clock skew (it falls back to blackhole routes).
[ -x /usr/sbin/iptables ] || command -v iptables >/dev/null 2>&1 || need+=(iptables)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # Debian starts etcd and HAProxy as services on install; the tests start their own.
    if command -v systemctl >/dev/null 2>&1; then
      systemctl stop etcd haproxy >/dev/null 2>&1 || true
    fi
  else
    echo "missing: ${need[*]} (install them, e.g. apt-get install -y ${need[*]})" >&2
    exit 1
  fi
fi
id postgres >/dev/null 2>&1 || { echo "the OS user 'postgres' is missing (install postgresql-15)" >&2; exit 1; }

export PATH="/usr/lib/postgresql/15/bin:$HOME/.cargo/bin:$PATH"
if [ "$long" -eq 1 ]; then
  cargo test --workspace --all-targets "$@" -- --ignored --skip feeder_main
  cargo run --release -p pgbaton-sim -- --seeds 2000 --first "$(date +%s)" --faults all --jobs 2
  if [ "$(id -u)" -eq 0 ]; then
    ./scripts/lab.sh --runs 10 --seed "$(date +%s)"
  fi
  exit 0
fi
cargo test --workspace --all-targets --no-fail-fast "$@"

# The full run (no arguments) also builds the Debian package from the binary just
# tested, installs it, and runs the installed binary.
if [ $# -eq 0 ] && [ "$(id -u)" -eq 0 ] && command -v dpkg >/dev/null 2>&1; then
  t0=$(date +%s)
  deb="$(./scripts/package.sh --ci)"
  dpkg -i "$deb" >/dev/null
  /usr/bin/pgbaton --version
  /usr/bin/pgbaton check-config -c /etc/pgbaton/pgbaton.yaml.example >/dev/null
  unit=/usr/lib/systemd/system/pgbaton.service
  [ -f "$unit" ] || unit=/lib/systemd/system/pgbaton.service
  if command -v systemd-analyze >/dev/null 2>&1; then systemd-analyze verify "$unit"; else [ -f "$unit" ]; fi
  man -w pgbaton-switchover >/dev/null 2>&1 || [ -f /usr/share/man/man1/pgbaton-switchover.1.gz ]
  echo "package: $deb installed and checked in $(( $(date +%s) - t0 )) s"
fi
