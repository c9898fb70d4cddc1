#!/usr/bin/env bash
# What metrics and byte counting cost: the same bench client against `serve` built from another commit (BASE),
# this tree's `serve`, and this tree's `serve --metrics`, alternating, ROUNDS times.
#   bash Benchmarks/metrics-overhead.sh /path/to/base/securechannel [ROUNDS]
# Build BASE with: git worktree add /tmp/base COMMIT && (cd /tmp/base && swift build -c release --product securechannel)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: metrics-overhead.sh BASE_BINARY [ROUNDS]}
ROUNDS=${2:-2}
swift build -c release --product securechannel >/dev/null
H=$PWD/.build/release/securechannel
WORK=$(mktemp -d)
SP=""
trap 'kill $SP 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
"$H" ca init --dir pki --name Barry >/dev/null
"$H" ca issue server --dir pki --name Jill --dns localhost --ip 127.0.0.1 >/dev/null
"$H" ca issue client --dir pki --name Chris >/dev/null
bench() { "$H" bench --connect "127.0.0.1:$1" --server-name localhost --cert pki/Chris.crt --key pki/Chris.key --ca pki/ca.crt --json "${@:2}"; }
run() {  # binary label extra...
    "$1" serve --listen 127.0.0.1:0 --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-any-client \
        --max-connections 20000 "${@:3}" > s.out 2>/dev/null & SP=$!
    for _ in $(seq 100); do grep -q "listening on" s.out 2>/dev/null && break; sleep 0.1; done
    local port
    port=$(grep -o 'listening on [0-9.:]*' s.out | sed 's/.*://')
    bench "$port" --mode echo --connections 100 --size 64 --duration 8 > e.json
    bench "$port" --mode handshake --connections 4 --duration 5 > h.json
    bench "$port" --mode bulk --connections 1 --size 16384 --duration 5 > b.json
    kill $SP; wait $SP 2>/dev/null || true
    python3 -c "
import json
e=json.load(open('e.json')); h=json.load(open('h.json')); b=json.load(open('b.json'))
print('%-13s echo %6.0f msg/s   handshake %5.0f/s   bulk %4.0f MB/s' % ('$2', e['messages_per_second'], h['handshakes_per_second'], b['megabytes_per_second']))"
}
for _ in $(seq "$ROUNDS"); do
    run "$BASE" base
    run "$H" this
    run "$H" this+metrics --metrics 127.0.0.1:0
done
