#!/usr/bin/env bash
# RSS growth of `securechannel serve` per idle mTLS connection: opens N connections with Python's ssl module
# (client certificate, one echo each so both handshakes are complete), holds them, and reads VmRSS.
# Usage: Benchmarks/idle-memory.sh [N]   (default 5000; raises the open-files limit for itself)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
ulimit -n $((N * 2 + 1000))
swift build -c release --product securechannel >/dev/null
SC="$PWD/.build/release/securechannel"
WORK=$(mktemp -d)
trap 'kill $SERVER $HOLDER 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$SC" ca init --dir "$WORK/pki" >/dev/null
"$SC" ca issue server --dir "$WORK/pki" --name Jill --dns localhost --ip 127.0.0.1 >/dev/null
"$SC" ca issue client --dir "$WORK/pki" --name Chris >/dev/null
cat > "$WORK/hold.py" <<'PY'
import socket, ssl, sys, time
port, n, pki = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=pki + "/ca.crt"); ctx.load_cert_chain(pki + "/Chris.crt", pki + "/Chris.key")
conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(b"hi\n"); s.recv(16)
    conns.append(s)
print("HELD", len(conns), flush=True)
time.sleep(float(sys.argv[4]))
PY
"$SC" serve --listen 127.0.0.1:0 --cert "$WORK/pki/Jill.crt" --key "$WORK/pki/Jill.key" --ca "$WORK/pki/ca.crt" \
    --allow-any-client --max-connections $((N + 100)) > "$WORK/serve.log" 2>/dev/null &
SERVER=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve.log" && break; sleep 0.1; done
PORT=$(grep -o 'listening on.*' "$WORK/serve.log" | grep -o '[0-9]*$')
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }
python3 "$WORK/hold.py" "$PORT" 100 "$WORK/pki" 0 >/dev/null    # warm-up: allocator, TLS context, code paths
BEFORE=$(rss)
python3 "$WORK/hold.py" "$PORT" "$N" "$WORK/pki" 30 > "$WORK/hold.log" 2>&1 &
HOLDER=$!
for _ in $(seq 1 300); do grep -q HELD "$WORK/hold.log" && break; sleep 1; done
AFTER=$(rss)
echo "RSS before: $BEFORE KiB; with $N idle mTLS connections: $AFTER KiB; per connection: $(( (AFTER - BEFORE) / N )) KiB"
