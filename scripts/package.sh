#!/usr/bin/env bash
# Build the Debian package of pgbaton with cargo-deb: the binary, man pages and shell
# completions (made by `pgbaton generate`), the systemd units and an example config.
#
#   ./scripts/package.sh           # optimized build → target/debian/pgbaton_<version>_<arch>.deb
#   ./scripts/package.sh --ci      # package target/debug/pgbaton as the tests just built it
#
# --ci exists to keep CI short: it proves the package installs and runs without an
# optimized build of its own (minutes on a small machine). Ship the default one.
# cargo-deb is installed when missing (`cargo install cargo-deb --locked`, about 4 min).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

mode=release
if [ "${1:-}" = "--ci" ]; then mode=ci; fi

if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --locked --quiet
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
if [ "$mode" = ci ]; then
  # cargo-deb refuses the dev profile by name; the CI package uses a profile of its own
  # (see Cargo.toml) and the debug binary the test run built.
  profile=deb-ci
  cargo build -p pgbaton --quiet
  mkdir -p "$target_dir/$profile"
  cp "$target_dir/debug/pgbaton" "$target_dir/$profile/pgbaton"
else
  profile=release
  cargo build --release -p pgbaton
fi
out="$target_dir/$profile"
bin="$out/pgbaton"

rm -rf "$out/pkg"
"$bin" generate man "$out/pkg/man"
gzip -9n "$out/pkg/man"/*.1
"$bin" generate completions "$out/pkg/completions"

cargo deb -p pgbaton --no-build --profile "$profile" --fast --output "$target_dir/debian/" \
  | tail -n 1
