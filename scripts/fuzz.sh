#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (RELIABILITY.md §5, Tier B) for N seconds each:
#   scripts/fuzz.sh [seconds=600] [target...]
# Needs a nightly toolchain: without one (see `rustup toolchain list`) it says so and exits 0,
# since nightly is not guaranteed on every machine; it is never part of npm test or .ci/run.
# Installs cargo-fuzz when missing. Each target's working corpus is fuzz/corpus/<target> (not
# committed), seeded from the captured replies in fuzz/seeds with the mode byte the target
# expects. On a shared machine run it under the heavy-work lock.
#
# FUZZ_SANITIZER (default none): the engine has no unsafe code, and AddressSanitizer's quarantine
# and allocator caches alone grow the process past the 512 MB RSS limit within two minutes, which
# would hide what the limit is there to catch (our own memory use). FUZZ_SANITIZER=address turns
# it back on (then raise the limit).
set -euo pipefail

secs="${1:-600}"
shift || true
all=(resp2_decode resp3_decode decode_chunked cluster_topology redirect_line encode_roundtrip)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain (rustup toolchain list); skipping the fuzz run" >&2
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# The fuzz crate keeps its own target dir: a shared CARGO_TARGET_DIR would mix sanitizer builds
# into the stable ones.
unset CARGO_TARGET_DIR

# seed <target> <prefix-bytes-as-printf-format> <files...>: one corpus file per seed.
seed() {
  local target="$1" prefix="$2"
  shift 2
  mkdir -p "$fuzz/corpus/$target"
  for f in "$@"; do
    [ -f "$f" ] || continue
    { printf "$prefix"; cat "$f"; } >"$fuzz/corpus/$target/seed-$(basename "$f" .resp)"
  done
}

seeds=("$fuzz"/seeds/*.resp)
resp3=("$fuzz"/seeds/resp3-*.resp)
topology=("$fuzz"/seeds/cluster-*.resp "$fuzz"/seeds/resp3-cluster-*.resp)
seed resp2_decode '' "${seeds[@]}"
seed encode_roundtrip '' "${seeds[@]}"
seed resp3_decode '\000' "${seeds[@]}"
seed decode_chunked '\002\003\035' "${seeds[@]}"
seed cluster_topology '\000' "${topology[@]}"
# Error lines as the redirection parser gets them: no '-', no CRLF.
mkdir -p "$fuzz/corpus/redirect_line"
i=0
for line in "MOVED 3999 127.0.0.1:7002" "ASK 3999 127.0.0.1:7002" "MOVED 0 [::1]:7000" \
  "MOVED 16383 :7000" "ASK 1 ?:7000" "MOVED 12182 redis-node-3.example:6380" \
  "TRYAGAIN Multiple keys request during rehashing of slot" "CLUSTERDOWN The cluster is down" \
  "LOADING Redis is loading the dataset in memory" "MASTERDOWN Link with MASTER is down" \
  "READONLY You can't write against a read only replica."; do
  printf '%s' "$line" >"$fuzz/corpus/redirect_line/seed-$i"
  i=$((i + 1))
done
if [ -f "$fuzz/seeds/moved.resp" ]; then
  tr -d '\r\n' <"$fuzz/seeds/moved.resp" | cut -c2- >"$fuzz/corpus/redirect_line/seed-captured"
fi

cd "$fuzz"
san="${FUZZ_SANITIZER:-none}"
cargo +nightly fuzz build -O -s "$san"
status=0
for t in "${targets[@]}"; do
  echo "== $t: ${secs}s"
  if ! cargo +nightly fuzz run -O -s "$san" "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=512 -timeout=5 -max_len=65536 \
    -dict=resp.dict -print_final_stats=1; then
    echo "fuzz.sh: $t found a crash; see fuzz/artifacts/$t/" >&2
    status=1
  fi
done
exit $status
