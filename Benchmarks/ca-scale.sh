#!/usr/bin/env bash
# What issuance costs as the CA's inventory grows (issue 16). For each size: a new CA whose store (DIR/ca.db,
# SQLite) is filled with that many synthetic records, 10 % revoked; then
#   - `ca issue` per second through the library (securechannel ca bench: key, signature, files, store),
#   - `ca issue` per second as a process (50 runs of the binary, each opening the store),
#   - one CRL of every revocation (seconds), and `ca list --status revoked` as a process (seconds).
# Usage: Benchmarks/ca-scale.sh [SIZE...]   (default 1000 10000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1000 10000 100000}")
read -r -a SIZES <<< "${SIZES[*]}"
swift build -c release --product securechannel >/dev/null
SC="$PWD/.build/release/securechannel"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

echo "| inventory | revoked | issue/s (library) | issue/s (process) | CRL entries | CRL seconds | ca list --status revoked (s) |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
declare -A library process
for size in "${SIZES[@]}"; do
    dir="$WORK/ca-$size"
    "$SC" ca bench --dir "$dir" --size "$size" --revoked-percent 10 --issues 200 > "$WORK/$size.json"
    start=$(now)
    for i in $(seq 1 50); do
        "$SC" ca issue client --dir "$dir" --name "proc-$i" --out "$dir/bench/proc-$i" >/dev/null
    done
    proc=$(python3 -c "print(f'{50 / ($(now) - $start):.1f}')")
    start=$(now)
    listed=$("$SC" ca list --dir "$dir" --status revoked --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
    list_s=$(python3 -c "print(f'{$(now) - $start:.3f}')")
    lib=$(python3 -c "print(f'{$(field "$WORK/$size.json" issuesPerSecond):.1f}')")
    library[$size]=$lib
    process[$size]=$proc
    printf '| %s | %s | %s | %s | %s | %.3f | %s (%s rows) |\n' "$size" "$(field "$WORK/$size.json" revoked)" "$lib" \
        "$proc" "$(field "$WORK/$size.json" crlEntries)" "$(field "$WORK/$size.json" crlSeconds)" "$list_s" "$listed"
    rm -rf "$dir"
done
first=${SIZES[0]}
last=${SIZES[${#SIZES[@]}-1]}
python3 - "$first" "$last" "${library[$first]}" "${library[$last]}" "${process[$first]}" "${process[$last]}" <<'PY'
import sys
first, last, lib_first, lib_last, proc_first, proc_last = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
print(f"\nissuance at {last} / at {first}: library {lib_last / lib_first:.2f}, process {proc_last / proc_first:.2f}"
      " (target: within 20 %, i.e. at least 0.80)")
PY
