#!/usr/bin/env bash
# Tern's whole test suite, on a fresh Debian machine as root: installs what the tests need
# (only what is missing), then runs fmt, clippy, every test and a bounded fuzz pass.
#   ./test.sh            everything
#   FUZZ_SECONDS=0 ./test.sh   skip fuzzing (CI always fuzzes)
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUST_BACKTRACE=1

step() { printf '\n==> %s\n' "$*"; }

# ---- 1. packages -------------------------------------------------------------------------
# Peers and tools the interop, kernel and datastore tests drive for real.
APT_PACKAGES=(
  build-essential pkg-config protobuf-compiler libprotobuf-dev   # build (etcd-client)
  iproute2 iputils-ping tcpdump procps psmisc                    # namespaces, captures
  bird gobgpd frr exabgp etcd-server                             # real peers, real etcd
  libssh-gcrypt-4                                                # BIRD 2 (unpacked below)
)
BIRD2_PREFIX=${TERN_BIRD2_PREFIX:-/opt/tern-test/bird2}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # bird2 conflicts with bird (1.6) in apt: unpack its .deb into a private prefix.
  if [ ! -x "$BIRD2_PREFIX/usr/sbin/bird" ]; then
    step "unpacking bird2 into $BIRD2_PREFIX"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download bird2 >/dev/null 2>&1 || { apt-get update -qq && apt-get download bird2; })
    mkdir -p "$BIRD2_PREFIX"
    dpkg -x "$tmp"/bird2_*.deb "$BIRD2_PREFIX"
    rm -rf "$tmp"
  fi
  # Daemons installed from packages may have been started by their postinst: tests start their own.
  for svc in bird bird6 frr etcd gobgpd; do
    pkill -x "$svc" 2>/dev/null || true
  done
else
  echo "*** not root or no apt-get: not installing packages; tests needing them will skip loudly ***"
fi
export TERN_BIRD2_PREFIX="$BIRD2_PREFIX"

# ---- 2. static checks ----------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# ---- 3. tests --------------------------------------------------------------------------------
step "cargo test"
# Namespace tests create and delete namespaces concurrently; iproute2 copes with that.
cargo test --workspace --locked --no-fail-fast

# Tools we only run (cargo-deny, cargo-fuzz) are built without their own LTO settings.
quick_install() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=2 CARGO_PROFILE_RELEASE_DEBUG=0 \
    cargo install "$1" --locked --quiet
}

# ---- 4. licenses, bans, sources ----------------------------------------------------------
# deny.toml: licenses on an allow-list, duplicate versions reported, crates.io only. The
# advisory database needs a network, so `advisories` is not checked here.
if ! cargo deny --version >/dev/null 2>&1; then
  step "installing cargo-deny"
  # Its release profile is fat LTO with one codegen unit (about 10 minutes here); a plain
  # optimised build is ample for a few seconds of checking.
  quick_install cargo-deny
fi
step "cargo deny check licenses bans sources"
cargo deny --log-level error check licenses bans sources

# ---- 5. fuzzing (bounded) ------------------------------------------------------------------
# Every target gets FUZZ_SECONDS; by default the whole pass gets FUZZ_TOTAL_SECONDS (420 s)
# shared equally, so adding a target keeps CI's fuzz time under 8 minutes.
FUZZ_TOTAL_SECONDS=${FUZZ_TOTAL_SECONDS:-420}
if [ -f fuzz/Cargo.toml ] && [ "${FUZZ_SECONDS:-}" != 0 ]; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    step "installing cargo-fuzz"
    quick_install cargo-fuzz
  fi
  # cargo-fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
  export RUSTC_BOOTSTRAP=1
  targets=$(cd fuzz && cargo fuzz list)
  count=$(echo "$targets" | wc -w)
  FUZZ_SECONDS=${FUZZ_SECONDS:-$(( FUZZ_TOTAL_SECONDS / (count > 0 ? count : 1) ))}
  for target in $targets; do
    step "fuzz $target for ${FUZZ_SECONDS}s"
    mkdir -p "fuzz/corpus/$target"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds+=("fuzz/seeds/$target")
    # A crash, leak, out-of-memory or slow input exits non-zero and leaves an artifact; so
    # does a target that fails to build. Either fails the run (the grep only trims the log).
    set +e
    (cd fuzz && cargo fuzz run --release "$target" "corpus/$target" "${seeds[@]/#fuzz\//}" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 2>&1) \
      | grep -E 'Done|stat::number_of_executed_units|ERROR|panicked|SUMMARY|error(\[|:)'
    status=${PIPESTATUS[0]}
    set -e
    found=$(find "fuzz/artifacts/$target" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' \
      -o -name 'oom-*' -o -name 'timeout-*' \) 2>/dev/null | head -n 1)
    if [ "$status" != 0 ] || [ -n "$found" ]; then
      echo "fuzz target $target failed (exit $status): see fuzz/artifacts/$target"; exit 1
    fi
  done
fi
step "all checks passed"
