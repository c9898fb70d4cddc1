#!/usr/bin/env bash
# Memory per idle mTLS connection, measured the same way for
#   serve     securechannel serve
#   tunnel    securechannel tunnel server (each connection also holds one to the backend)
#   haproxy   HAProxy, 2 threads (each connection also holds one to the backend)
#   nginx     nginx's stream module, 2 workers (each connection also holds one to the backend)
# Python's ssl module opens N connections (client certificate, one echo each so both handshakes are complete) and
# holds them; the RSS of the server, summed over all its processes, is read before and after. The backend is the C
# echo of Benchmarks/echo-backend.c. Installs haproxy, nginx (with its stream module) and gcc when missing.
# Usage: Benchmarks/idle-memory.sh [N]   (default 5000; raises the open-files limit for itself)
#   SERVERS="serve tunnel" measures only those rows; SECURECHANNEL_BIN=PATH measures another build of ours.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
source Benchmarks/proxies.sh
install_peers
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((N * 2 + 1000)) ] || { echo "the open-files limit ($(ulimit -n)) is too low for $N connections"; exit 1; }
if [ -n "${SECURECHANNEL_BIN:-}" ]; then
    SC="$SECURECHANNEL_BIN"
else
    swift build -c release --product securechannel >/dev/null
    SC="$PWD/.build/release/securechannel"
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
"$SC" ca init --dir "$WORK/pki" >/dev/null
"$SC" ca issue server --dir "$WORK/pki" --name Jill --dns localhost --ip 127.0.0.1 >/dev/null
"$SC" ca issue client --dir "$WORK/pki" --name Chris >/dev/null
P="$WORK/pki"
cat "$P/Jill.crt" "$P/Jill.key" > "$WORK/haproxy.pem"
cc -O2 -o "$WORK/echo-backend" Benchmarks/echo-backend.c
"$WORK/echo-backend" > "$WORK/echo.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 50); do grep -q PORT "$WORK/echo.log" && break; sleep 0.1; done
BACKEND=$(grep -o '[0-9]*$' "$WORK/echo.log")

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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() {  # KiB, the process and its children
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        total=$(( total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
start() {  # name -> sets SERVER and PORT
    case "$1" in
    serve)
        "$SC" serve --listen 127.0.0.1:0 --cert "$P/Jill.crt" --key "$P/Jill.key" --ca "$P/ca.crt" \
            --allow-any-client --max-connections $((N + 100)) > "$WORK/$1.log" 2>/dev/null & ;;
    tunnel)
        "$SC" tunnel server --listen 127.0.0.1:0 --target "127.0.0.1:$BACKEND" --cert "$P/Jill.crt" \
            --key "$P/Jill.key" --ca "$P/ca.crt" --allow-any-client --max-connections $((N + 100)) \
            > "$WORK/$1.log" 2>/dev/null & ;;
    haproxy)
        PORT=$(free_port)
        haproxy_config "$WORK/haproxy.cfg" "$PORT" "$BACKEND" "$WORK/haproxy.pem" "$P/ca.crt" $((N + 100)) 300s
        haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/$1.log" 2>&1 & ;;
    nginx)
        PORT=$(free_port)
        nginx_config "$WORK/nginx.conf" "$WORK/nginx" "$PORT" "$BACKEND" "$P/Jill.crt" "$P/Jill.key" "$P/ca.crt" "$N" 300s
        nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" > "$WORK/$1.log" 2>&1 & ;;
    esac
    SERVER=$!
    PIDS+=("$SERVER")
    for _ in $(seq 1 100); do
        case "$1" in
        serve|tunnel) PORT=$(grep -o 'listening on [^ ]*' "$WORK/$1.log" 2>/dev/null | grep -o '[0-9]*$' || true) ;;
        esac
        [ -n "${PORT:-}" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return
        sleep 0.1
    done
    echo "$1 did not start:" >&2; cat "$WORK/$1.log" >&2; exit 1
}

echo "$N idle mTLS connections (Python ssl, client certificate, one echo each), RSS summed over the server's processes"
echo
echo "| server | RSS before KiB | RSS with $N connections KiB | KiB per connection |"
echo "|---|---:|---:|---:|"
for name in ${SERVERS:-serve tunnel haproxy nginx}; do
    PORT=""
    start "$name"
    python3 "$WORK/hold.py" "$PORT" 100 "$P" 0 >/dev/null    # warm-up: allocator, TLS context, code paths
    sleep 1                                                    # the warm-up's connections are closed and freed
    before=$(rss "$SERVER")
    python3 "$WORK/hold.py" "$PORT" "$N" "$P" 120 > "$WORK/hold.log" 2>&1 &
    holder=$!
    for _ in $(seq 1 600); do grep -q HELD "$WORK/hold.log" && break; kill -0 "$holder" 2>/dev/null || break; sleep 0.5; done
    grep -q HELD "$WORK/hold.log" || { echo "$name: the connections were not all held:" >&2; cat "$WORK/hold.log" >&2; exit 1; }
    after=$(rss "$SERVER")
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    echo "| $name | $before | $after | $(( (after - before) / N )) |"
done
