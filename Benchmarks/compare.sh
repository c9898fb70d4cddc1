#!/usr/bin/env bash
# Side-by-side: the same `securechannel bench` client against
#   1. securechannel serve (echo)
#   2. stunnel 5 (client certificates required) in front of a plaintext echo backend
#   3. a Python threaded ssl echo server, like the original exercise's
#   4. securechannel tunnel server in front of the same echo backend
#   5. tunnel pairs over the same backend, driven in plaintext (bench --plaintext): our tunnel client + server
#      against a stunnel client + server, and the backend alone as the baseline for the added latency
# plus `openssl speed` for the crypto bounds. Release build; one P-256 PKI; everything on 127.0.0.1.
# Usage: Benchmarks/compare.sh [seconds-per-run]   (default 5; the whole script stays under 10 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-5}"

need=()
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || need+=(stunnel4)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
STUNNEL=$(command -v stunnel4 || command -v stunnel)

swift build -c release --product securechannel >/dev/null
SC="$PWD/.build/release/securechannel"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

"$SC" ca init --dir "$WORK/pki" --name Barry >/dev/null
"$SC" ca issue server --dir "$WORK/pki" --name Jill --dns localhost --ip 127.0.0.1 >/dev/null
"$SC" ca issue client --dir "$WORK/pki" --name Chris >/dev/null
P="$WORK/pki"

wait_port() {  # file, prefix -> port once "prefix…:PORT" shows up
    for _ in $(seq 1 100); do
        port=$(grep -o "$2[^ ]*" "$1" 2>/dev/null | head -1 | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && { echo "$port"; return; }
        sleep 0.1
    done
    echo "no port in $1" >&2; cat "$1" >&2; exit 1
}

# Plaintext line-echo backend (asyncio), shared by stunnel and our tunnel.
cat > "$WORK/echo.py" <<'PY'
import asyncio, sys
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
python3 -u "$WORK/echo.py" > "$WORK/echo.log" 2>&1 & PIDS+=($!)
BACKEND=$(wait_port "$WORK/echo.log" "PORT:")

# Python threaded ssl echo server (the exercise's design: a thread per client, client certificate required).
cat > "$WORK/pyserver.py" <<'PY'
import socket, ssl, sys, threading
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=sys.argv[3])
ctx.load_cert_chain(sys.argv[1], sys.argv[2]); ctx.verify_mode = ssl.CERT_REQUIRED
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
srv = socket.create_server(("127.0.0.1", 0)); print("PORT:%d" % srv.getsockname()[1], flush=True)
def serve(conn):
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            while data := tls.recv(65536):
                tls.sendall(data)
    except Exception:
        pass
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
PY
python3 -u "$WORK/pyserver.py" "$P/Jill.crt" "$P/Jill.key" "$P/ca.crt" > "$WORK/py.log" 2>&1 & PIDS+=($!)
PYPORT=$(wait_port "$WORK/py.log" "PORT:")

"$SC" serve --listen 127.0.0.1:0 --cert "$P/Jill.crt" --key "$P/Jill.key" --ca "$P/ca.crt" --allow-any-client \
    --max-connections 20000 > "$WORK/serve.log" 2>/dev/null & PIDS+=($!)
OURS=$(wait_port "$WORK/serve.log" "listening on ")

"$SC" tunnel server --listen 127.0.0.1:0 --target "127.0.0.1:$BACKEND" --cert "$P/Jill.crt" --key "$P/Jill.key" \
    --ca "$P/ca.crt" --allow-any-client --max-connections 20000 > "$WORK/tunnel.log" 2>/dev/null & PIDS+=($!)
TUNNEL=$(wait_port "$WORK/tunnel.log" "listening on ")

STPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/stunnel.conf" <<CONF
foreground = yes
pid =
[echo]
accept = 127.0.0.1:$STPORT
connect = 127.0.0.1:$BACKEND
cert = $P/Jill.crt
key = $P/Jill.key
CAfile = $P/ca.crt
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
CONF
"$STUNNEL" "$WORK/stunnel.conf" > "$WORK/stunnel.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$STPORT") 2>/dev/null && break; sleep 0.1; done

# Tunnel pairs: plaintext in on 127.0.0.1, mTLS between the two ends, the same echo backend behind.
"$SC" tunnel client --listen 127.0.0.1:0 --target "127.0.0.1:$TUNNEL" --server-name localhost --cert "$P/Chris.crt" \
    --key "$P/Chris.key" --ca "$P/ca.crt" > "$WORK/tunnel-client.log" 2>/dev/null & PIDS+=($!)
OURPAIR=$(wait_port "$WORK/tunnel-client.log" "listening on ")
STCPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/stunnel-client.conf" <<CONF
foreground = yes
pid =
[echo-client]
client = yes
accept = 127.0.0.1:$STCPORT
connect = 127.0.0.1:$STPORT
cert = $P/Chris.crt
key = $P/Chris.key
CAfile = $P/ca.crt
verifyChain = yes
checkHost = localhost
sslVersionMin = TLSv1.3
CONF
"$STUNNEL" "$WORK/stunnel-client.conf" > "$WORK/stunnel-client.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$STCPORT") 2>/dev/null && break; sleep 0.1; done

bench() {  # port mode extra... -> JSON
    "$SC" bench --connect "127.0.0.1:$1" --server-name localhost --cert "$P/Chris.crt" --key "$P/Chris.key" \
        --ca "$P/ca.crt" --mode "$2" --duration "$SECONDS_PER_RUN" --json "${@:3}"
}
plainbench() {  # port mode extra... -> JSON (the plaintext entrance of a tunnel pair, or the backend itself)
    "$SC" bench --connect "127.0.0.1:$1" --plaintext --mode "$2" --duration "$SECONDS_PER_RUN" --json "${@:3}"
}
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=d
for k in sys.argv[2].split("."): v = None if v is None else v.get(k)
print("-" if v is None else ("%.1f" % v if isinstance(v, float) else v))' "$1" "$2"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem/{print $2}') GiB"
echo "openssl: $(openssl version)"
echo
declare -A R
for target in ours:$OURS stunnel:$STPORT python:$PYPORT tunnel:$TUNNEL; do
    name=${target%%:*}; port=${target##*:}
    R[$name.handshake]=$(bench "$port" handshake --connections 4)
    R[$name.echo]=$(bench "$port" echo --connections 100 --size 64)
    R[$name.bulk]=$(bench "$port" bulk --connections 1 --size 16384)
done

for target in backend:$BACKEND ourpair:$OURPAIR stunnelpair:$STCPORT; do
    name=${target%%:*}; port=${target##*:}
    R[$name.handshake]=$(plainbench "$port" handshake --connections 4)
    R[$name.echo]=$(plainbench "$port" echo --connections 100 --size 64)
    R[$name.bulk]=$(plainbench "$port" bulk --connections 1 --size 16384)
    R[$name.rtt]=$(plainbench "$port" echo --connections 1 --size 64)  # one at a time: the round trip itself
done

printf '%-12s %14s %14s %12s %12s %12s %10s\n' server "handshakes/s" "echo msg/s" "echo p50 ms" "echo p99 ms" "bulk MB/s" errors
for name in ours stunnel python tunnel backend ourpair stunnelpair; do
    errors=$(( $(field "${R[$name.handshake]}" errors) + $(field "${R[$name.echo]}" errors) + $(field "${R[$name.bulk]}" errors) ))
    printf '%-12s %14s %14s %12s %12s %12s %10s\n' "$name" \
        "$(field "${R[$name.handshake]}" handshakes_per_second)" "$(field "${R[$name.echo]}" messages_per_second)" \
        "$(field "${R[$name.echo]}" latency_ms.p50)" "$(field "${R[$name.echo]}" latency_ms.p99)" \
        "$(field "${R[$name.bulk]}" megabytes_per_second)" "$errors"
done

echo
echo "openssl speed (crypto bounds):"
openssl speed -seconds 2 ecdsap256 2>/dev/null | grep -E '^ *256 bits ecdsa' || true
openssl speed -seconds 2 ecdhx25519 2>/dev/null | grep -E 'X25519|x25519' | tail -1 || true
openssl speed -seconds 2 -bytes 16384 -evp aes-128-gcm 2>/dev/null | tail -1 || true

python3 - "${R[ours.handshake]}" "${R[stunnel.handshake]}" "${R[ours.echo]}" "${R[stunnel.echo]}" "${R[python.echo]}" \
    "${R[tunnel.echo]}" "${R[stunnel.bulk]}" "${R[tunnel.bulk]}" "${R[backend.echo]}" "${R[ourpair.echo]}" \
    "${R[stunnelpair.echo]}" "${R[ourpair.bulk]}" "${R[stunnelpair.bulk]}" "${R[backend.rtt]}" "${R[ourpair.rtt]}" \
    "${R[stunnelpair.rtt]}" <<'PY'
import json, sys
oh, sh, oe, se, pe, te, sb, tb, be, ope, spe, opb, spb, brtt, ortt, srtt = [json.loads(a) for a in sys.argv[1:]]
def ratio(a, b): return "-" if not b else "%.2fx" % (a / b)
print()
print("ratios: ours/stunnel handshakes %s, ours/stunnel echo %s, ours/python echo %s, tunnel server/stunnel echo %s, tunnel server/stunnel bulk %s" % (
    ratio(oh["handshakes_per_second"], sh["handshakes_per_second"]), ratio(oe["messages_per_second"], se["messages_per_second"]),
    ratio(oe["messages_per_second"], pe["messages_per_second"]), ratio(te["messages_per_second"], se["messages_per_second"]),
    ratio(tb["megabytes_per_second"], sb["megabytes_per_second"])))
added = lambda pair, key: pair["latency_ms"][key] - brtt["latency_ms"][key]
print("tunnel pairs: ours/stunnel echo %s, ours/stunnel bulk %s" % (
    ratio(ope["messages_per_second"], spe["messages_per_second"]), ratio(opb["megabytes_per_second"], spb["megabytes_per_second"])))
print("added round trip (1 connection, 64 B, over the backend alone %.3f ms p50): ours +%.3f ms p50 / +%.3f ms p99, stunnel +%.3f ms p50 / +%.3f ms p99" % (
    brtt["latency_ms"]["p50"], added(ortt, "p50"), added(ortt, "p99"), added(srtt, "p50"), added(srtt, "p99")))
PY
