#!/usr/bin/env bash
# Before and after a change: the same bench client (this tree's) against `serve` and against a tunnel pair
# (tunnel client -> tunnel server -> a Python echo backend, driven through the client's plaintext entrance), each
# built from BASE and from this tree, alternating BASE/this ROUNDS times, so that both see the same machine state.
#   bash Benchmarks/before-after.sh /path/to/base/securechannel [ROUNDS]
# Build BASE with: git clone . /tmp/base && (cd /tmp/base && git checkout COMMIT && swift build -c release --product securechannel)
# Prints one line per run; the spread between runs of the same binary is the noise.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: before-after.sh BASE_BINARY [ROUNDS]}
ROUNDS=${2:-3}
swift build -c release --product securechannel >/dev/null
H=$PWD/.build/release/securechannel
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
"$H" ca init --dir pki --name Barry >/dev/null
"$H" ca issue server --dir pki --name Jill --dns localhost --ip 127.0.0.1 >/dev/null
"$H" ca issue client --dir pki --name Chris >/dev/null
cat > echo.py <<'PY'
import asyncio
async def handle(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("PORT:%d" % server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
PY
python3 -u echo.py > echo.out & PIDS+=($!)
port_of() { for _ in $(seq 100); do p=$(grep -o "$2[0-9.:]*" "$1" 2>/dev/null | head -1 | sed 's/.*://'); [ -n "$p" ] && { echo "$p"; return; }; sleep 0.1; done; cat "$1" >&2; exit 1; }
ECHO=$(port_of echo.out "PORT:")
tls() { "$H" bench --connect "127.0.0.1:$1" --server-name localhost --cert pki/Chris.crt --key pki/Chris.key --ca pki/ca.crt --json "${@:2}"; }
field() { python3 -c "import json,sys; print('%.0f' % json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
run() {  # binary label
    "$1" serve --listen 127.0.0.1:0 --cert pki/Jill.crt --key pki/Jill.key --ca pki/ca.crt --allow-any-client \
        --max-connections 20000 > s.out 2>/dev/null & local sp=$!
    local port; port=$(port_of s.out "listening on ")
    tls "$port" --mode echo --connections 100 --size 64 --duration 8 > e.json
    tls "$port" --mode handshake --connections 4 --duration 5 > h.json
    kill $sp; wait $sp 2>/dev/null || true
    "$1" tunnel server --listen 127.0.0.1:0 --target "127.0.0.1:$ECHO" --cert pki/Jill.crt --key pki/Jill.key \
        --ca pki/ca.crt --allow-any-client --max-connections 20000 > ts.out 2>/dev/null & local tsp=$!
    local tport; tport=$(port_of ts.out "listening on ")
    "$1" tunnel client --listen 127.0.0.1:0 --target "127.0.0.1:$tport" --server-name localhost --cert pki/Chris.crt \
        --key pki/Chris.key --ca pki/ca.crt > tc.out 2>/dev/null & local tcp=$!
    local cport; cport=$(port_of tc.out "listening on ")
    "$H" bench --connect "127.0.0.1:$cport" --plaintext --mode echo --connections 50 --size 64 --duration 8 --json > t.json
    "$H" bench --connect "127.0.0.1:$cport" --plaintext --mode handshake --connections 4 --duration 5 --json > th.json
    "$H" bench --connect "127.0.0.1:$cport" --plaintext --mode bulk --connections 1 --size 16384 --duration 5 --json > tb.json
    kill $tcp $tsp; wait $tcp $tsp 2>/dev/null || true
    printf '%-5s serve echo %6s msg/s   serve handshakes %5s/s   pair echo %6s msg/s   pair connections %4s/s   pair bulk %4s MB/s\n' "$2" \
        "$(field e.json messages_per_second)" "$(field h.json handshakes_per_second)" "$(field t.json messages_per_second)" \
        "$(field th.json handshakes_per_second)" "$(field tb.json megabytes_per_second)"
}
for _ in $(seq "$ROUNDS"); do
    run "$BASE" base
    run "$H" this
done
