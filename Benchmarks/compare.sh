#!/usr/bin/env bash
# Side by side, with what each server spends: the same `securechannel bench` client against
#   serve     securechannel serve (echo in process)
#   tunnel    securechannel tunnel server in front of the echo backend
#   haproxy   HAProxy (bind … ssl crt … ca-file … verify required), 2 threads, TLS 1.3 only, same backend
#   nginx     nginx's stream module (ssl_verify_client on), 2 workers, TLS 1.3 only, same backend
#   stunnel   stunnel 5 (requireCert, verifyChain), TLS 1.3 only, same backend
#   python    a Python threaded ssl echo server, like the original exercise's
# and tunnel pairs driven in plaintext (bench --plaintext): ours and stunnel's, with the backend alone as the
# baseline for the added round trip. The backend is a small C epoll echo (Benchmarks/echo-backend.c).
#
# For every server the CPU time it spent (utime + stime from /proc/PID/stat, summed over all its processes) is read
# before and after each run: CPU µs per handshake, per echo message, per MB of bulk. These ratios hold when the
# machine's speed drifts; throughput on 2 shared cores mostly measures the load generator. The server-side crypto
# floor of a handshake comes from `openssl speed` in the same run: 1 ECDSA P-256 sign, 2 verifies (the client's
# certificate and its CertificateVerify) and an X25519 key generation and exchange.
#
# Release build; one P-256 PKI; everything on 127.0.0.1. Installs stunnel4, haproxy, nginx (with its stream module),
# gcc, python3 and openssl from Debian when missing.
# The servers are measured in turns, ROUNDS times (serve, tunnel, haproxy, … then again), and each figure is the
# median of its rounds: a shared machine's speed drifts by tens of percent within minutes, and rows measured one
# after the other would compare different machines.
# Usage: Benchmarks/compare.sh [seconds-per-run] [rounds]   (default 3 s, 3 rounds: about 4 minutes in all)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-3}"
ROUNDS="${2:-3}"

source Benchmarks/proxies.sh
install_peers stunnel
STUNNEL=$(command -v stunnel4 || command -v stunnel)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

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
cat "$P/Jill.crt" "$P/Jill.key" > "$WORK/haproxy.pem"

wait_port() {  # file, prefix -> port once "prefix…:PORT" shows up
    for _ in $(seq 1 100); do
        port=$(grep -o "$2[^ ]*" "$1" 2>/dev/null | head -1 | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && { echo "$port"; return; }
        sleep 0.1
    done
    echo "no port in $1" >&2; cat "$1" >&2; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listening() {  # port, log
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
    echo "nothing listens on $1:" >&2; cat "$2" >&2; exit 1
}

cc -O2 -o "$WORK/echo-backend" Benchmarks/echo-backend.c
"$WORK/echo-backend" > "$WORK/echo.log" 2>&1 & PIDS+=($!)
BACKEND=$(wait_port "$WORK/echo.log" "PORT:")

declare -A PORT SERVER_PID
# Python threaded ssl echo server (the exercise's design: a thread per client, client certificate required).
cat > "$WORK/pyserver.py" <<'PY'
import socket, ssl, sys, threading
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=sys.argv[3])
ctx.load_cert_chain(sys.argv[1], sys.argv[2]); ctx.verify_mode = ssl.CERT_REQUIRED
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
srv = socket.create_server(("127.0.0.1", 0), backlog=1024); print("PORT:%d" % srv.getsockname()[1], flush=True)
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
SERVER_PID[python]=$!; PORT[python]=$(wait_port "$WORK/py.log" "PORT:")

"$SC" serve --listen 127.0.0.1:0 --cert "$P/Jill.crt" --key "$P/Jill.key" --ca "$P/ca.crt" --allow-any-client \
    --max-connections 20000 > "$WORK/serve.log" 2>/dev/null & PIDS+=($!)
SERVER_PID[serve]=$!; PORT[serve]=$(wait_port "$WORK/serve.log" "listening on ")

"$SC" tunnel server --listen 127.0.0.1:0 --target "127.0.0.1:$BACKEND" --cert "$P/Jill.crt" --key "$P/Jill.key" \
    --ca "$P/ca.crt" --allow-any-client --max-connections 20000 > "$WORK/tunnel.log" 2>/dev/null & PIDS+=($!)
SERVER_PID[tunnel]=$!; PORT[tunnel]=$(wait_port "$WORK/tunnel.log" "listening on ")

PORT[haproxy]=$(free_port)
haproxy_config "$WORK/haproxy.cfg" "${PORT[haproxy]}" "$BACKEND" "$WORK/haproxy.pem" "$P/ca.crt" 5000 60s
haproxy -db -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 & PIDS+=($!)
SERVER_PID[haproxy]=$!
wait_listening "${PORT[haproxy]}" "$WORK/haproxy.log"

PORT[nginx]=$(free_port)
nginx_config "$WORK/nginx.conf" "$WORK/nginx" "${PORT[nginx]}" "$BACKEND" "$P/Jill.crt" "$P/Jill.key" "$P/ca.crt" 5000 60s
nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" > "$WORK/nginx.log" 2>&1 & PIDS+=($!)
SERVER_PID[nginx]=$!
wait_listening "${PORT[nginx]}" "$WORK/nginx/error.log"

PORT[stunnel]=$(free_port)
cat > "$WORK/stunnel.conf" <<CONF
foreground = yes
pid =
[echo]
accept = 127.0.0.1:${PORT[stunnel]}
connect = 127.0.0.1:$BACKEND
cert = $P/Jill.crt
key = $P/Jill.key
CAfile = $P/ca.crt
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
CONF
"$STUNNEL" "$WORK/stunnel.conf" > "$WORK/stunnel.log" 2>&1 & PIDS+=($!)
SERVER_PID[stunnel]=$!
wait_listening "${PORT[stunnel]}" "$WORK/stunnel.log"

# Tunnel pairs: plaintext in on 127.0.0.1, mTLS between the two ends, the same echo backend behind.
"$SC" tunnel client --listen 127.0.0.1:0 --target "127.0.0.1:${PORT[tunnel]}" --server-name localhost \
    --cert "$P/Chris.crt" --key "$P/Chris.key" --ca "$P/ca.crt" > "$WORK/tunnel-client.log" 2>/dev/null & PIDS+=($!)
OURPAIR=$(wait_port "$WORK/tunnel-client.log" "listening on ")
STCPORT=$(free_port)
cat > "$WORK/stunnel-client.conf" <<CONF
foreground = yes
pid =
[echo-client]
client = yes
accept = 127.0.0.1:$STCPORT
connect = 127.0.0.1:${PORT[stunnel]}
cert = $P/Chris.crt
key = $P/Chris.key
CAfile = $P/ca.crt
verifyChain = yes
checkHost = localhost
sslVersionMin = TLSv1.3
CONF
"$STUNNEL" "$WORK/stunnel-client.conf" > "$WORK/stunnel-client.log" 2>&1 & PIDS+=($!)
wait_listening "$STCPORT" "$WORK/stunnel-client.log"

# CPU ticks of a server: the process and its children (nginx's workers), every thread included. Prints
# "utime+stime stime": all of it, and the kernel's part.
cpu_ticks() {
    local total=0 system=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        [ -r "/proc/$pid/stat" ] || continue
        read -r u s < <(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12, $13 }')
        total=$(( total + u + s ))
        system=$(( system + s ))
    done
    echo "$total $system"
}
bench() {  # port mode extra... -> JSON
    "$SC" bench --connect "127.0.0.1:$1" --server-name localhost --cert "$P/Chris.crt" --key "$P/Chris.key" \
        --ca "$P/ca.crt" --mode "$2" --duration "$SECONDS_PER_RUN" --json "${@:3}"
}
plainbench() {  # port mode extra... -> JSON (the plaintext entrance of a tunnel pair, or the backend itself)
    "$SC" bench --connect "127.0.0.1:$1" --plaintext --mode "$2" --duration "$SECONDS_PER_RUN" --json "${@:3}"
}
measured() {  # server mode extra... -> the bench JSON with "server_cpu_seconds" added
    local before after json
    before=$(cpu_ticks "${SERVER_PID[$1]}")
    json=$(bench "${PORT[$1]}" "$2" "${@:3}")
    after=$(cpu_ticks "${SERVER_PID[$1]}")
    read -r before_all before_sys <<< "$before"
    read -r after_all after_sys <<< "$after"
    python3 -c 'import json, sys; d = json.loads(sys.argv[1]); t = int(sys.argv[4]); d["server_cpu_seconds"] = int(sys.argv[2]) / t; d["server_system_seconds"] = int(sys.argv[3]) / t; print(json.dumps(d))' \
        "$json" "$((after_all - before_all))" "$((after_sys - before_sys))" "$(getconf CLK_TCK)"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem/{print $2}') GiB"
echo "openssl: $(openssl version); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1 | cut -d' ' -f3); $("$STUNNEL" -version 2>&1 | grep -m1 -o "stunnel [0-9.]*")"
echo "$SECONDS_PER_RUN s per run, $ROUNDS rounds (medians); handshakes: 4 connections at a time; echo: 100 connections, 64 B; bulk: 1 connection, 16 KiB writes"
echo
SERVERS=(serve tunnel haproxy nginx stunnel python)
RESULTS="$WORK/results.json"
echo "{\"runs\": [" > "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for name in "${SERVERS[@]}"; do
        h=$(measured "$name" handshake --connections 4)
        e=$(measured "$name" echo --connections 100 --size 64)
        b=$(measured "$name" bulk --connections 1 --size 16384)
        echo "{\"server\": \"$name\", \"handshake\": $h, \"echo\": $e, \"bulk\": $b}," >> "$RESULTS"
    done
    for target in backend:$BACKEND ourpair:$OURPAIR stunnelpair:$STCPORT; do
        name=${target%%:*}; port=${target##*:}
        e=$(plainbench "$port" echo --connections 100 --size 64)
        b=$(plainbench "$port" bulk --connections 1 --size 16384)
        r=$(plainbench "$port" echo --connections 1 --size 64)  # one at a time: the round trip itself
        echo "{\"server\": \"$name\", \"echo\": $e, \"bulk\": $b, \"rtt\": $r}," >> "$RESULTS"
    done
done
echo "{}]," >> "$RESULTS"
SPEED_ECDSA=$(openssl speed -seconds 2 ecdsap256 2>/dev/null | grep -E '^ *256 bits ecdsa' | head -1 || true)
SPEED_X25519=$(openssl speed -seconds 2 ecdhx25519 2>/dev/null | grep -iE 'x25519' | tail -1 || true)
python3 -c 'import json, sys; print(json.dumps({"ecdsa": sys.argv[1], "x25519": sys.argv[2]}))' \
    "$SPEED_ECDSA" "$SPEED_X25519" | sed 's/^/"speed": /' >> "$RESULTS"
echo "}" >> "$RESULTS"

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
raw = json.load(open(sys.argv[1]))
runs = [r for r in raw["runs"] if r]

def median_run(rows, mode, key):
    """The run of `mode` whose `key(run)` is the median among the rounds (so every figure of a row is one run's)."""
    candidates = sorted((r[mode] for r in rows), key=lambda run: key(run) or 0)
    return candidates[len(candidates) // 2]

def per(run, unit, field="server_cpu_seconds"):
    """Server CPU µs per unit of work in `run` (`field`: all of it, or the kernel's part)."""
    cpu = run.get(field)
    if cpu is None: return None
    seconds = run["seconds"]
    if unit == "handshake": count = (run["handshakes_per_second"] or 0) * seconds
    elif unit == "message": count = run["messages"] or 0
    else: count = (run["megabytes_per_second"] or 0) * seconds
    return cpu * 1e6 / count if count else None

def f(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"

R = {"speed": raw["speed"]}
for name in ["serve", "tunnel", "haproxy", "nginx", "stunnel", "python"]:
    rows = [r for r in runs if r["server"] == name]
    R[name] = {"handshake": median_run(rows, "handshake", lambda run: per(run, "handshake")),
               "echo": median_run(rows, "echo", lambda run: per(run, "message")),
               "bulk": median_run(rows, "bulk", lambda run: per(run, "MB")),
               "spread": {mode: [per(r[mode], unit) for r in rows]
                          for mode, unit in (("handshake", "handshake"), ("echo", "message"), ("bulk", "MB"))}}
for name in ["backend", "ourpair", "stunnelpair"]:
    rows = [r for r in runs if r["server"] == name]
    R[name] = {"echo": median_run(rows, "echo", lambda run: run["messages_per_second"]),
               "bulk": median_run(rows, "bulk", lambda run: run["megabytes_per_second"]),
               "rtt": median_run(rows, "rtt", lambda run: run["latency_ms"]["p50"])}

print("| server | handshakes/s | CPU µs/handshake | echo msg/s | CPU µs/msg | echo p50 ms | bulk MB/s | CPU µs/MB | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
cost = {}
for name in ["serve", "tunnel", "haproxy", "nginx", "stunnel", "python"]:
    h, e, b = R[name]["handshake"], R[name]["echo"], R[name]["bulk"]
    cost[name] = (per(h, "handshake"), per(e, "message"), per(b, "MB"))
    errors = sum(r[mode]["errors"] for r in runs if r["server"] == name for mode in ("handshake", "echo", "bulk"))
    print(f"| {name} | {f(h['handshakes_per_second'], 1)} | {f(cost[name][0])} | {f(e['messages_per_second'], 1)} | "
          f"{f(cost[name][1], 1)} | {f(e['latency_ms']['p50'], 3)} | {f(b['megabytes_per_second'], 1)} | {f(cost[name][2])} | {errors} |")
print("\nspread across the rounds, CPU µs per handshake / echo message / bulk MB (min-max):")
for name in ["serve", "tunnel", "haproxy", "nginx", "stunnel", "python"]:
    spread = R[name]["spread"]
    text = " / ".join(f"{min(v):,.1f}-{max(v):,.1f}" if all(x is not None for x in v) else "-"
                      for v in (spread["handshake"], spread["echo"], spread["bulk"]))
    print(f"  {name:8} {text}")
print("\nthe kernel's part of the CPU (system time: socket calls, TCP on loopback, epoll), µs per handshake and per echo message:")
for name in ["serve", "tunnel", "haproxy", "nginx"]:
    h, e = R[name]["handshake"], R[name]["echo"]
    print(f"  {name:8} handshake {f(per(h, 'handshake', 'server_system_seconds'))} of {f(per(h, 'handshake'))}, "
          f"echo message {f(per(e, 'message', 'server_system_seconds'), 1)} of {f(per(e, 'message'), 1)}")
print()
for name in ["backend", "ourpair", "stunnelpair"]:
    e, b, r = R[name]["echo"], R[name]["bulk"], R[name]["rtt"]
    print(f"{name:12} echo {f(e['messages_per_second'], 1)} msg/s, bulk {f(b['megabytes_per_second'], 1)} MB/s, "
          f"1-connection round trip p50 {f(r['latency_ms']['p50'], 3)} ms, p99 {f(r['latency_ms']['p99'], 3)} ms")

# The crypto floor of a server's full mTLS handshake, from openssl speed in this run.
floor = None
try:
    ecdsa = R["speed"]["ecdsa"].split()
    sign_s, verify_s = float(ecdsa[-2]), float(ecdsa[-1])          # operations per second
    x25519 = float(R["speed"]["x25519"].split()[-1])
    floor = 1e6 / sign_s + 2 * 1e6 / verify_s + 2 * 1e6 / x25519     # sign, 2 verifies, X25519 keygen + exchange
    print(f"\nopenssl speed: P-256 sign {sign_s:,.0f}/s, verify {verify_s:,.0f}/s; X25519 {x25519:,.0f}/s"
          f" -> server crypto floor of a handshake {floor:,.0f} µs (1 sign, 2 verifies, X25519 keygen + exchange;"
          " our client and servers also exchange ML-KEM-768, which openssl 3.0 cannot measure)")
except (ValueError, IndexError, KeyError):
    print("\nopenssl speed gave no figures: no crypto floor")

def best(index):
    values = [cost[n][index] for n in ("haproxy", "nginx") if cost[n][index]]
    return min(values) if values else None
def ratio(a, b): return "-" if a is None or not b else f"{a / b:.2f}"
def verdict(ok): return "met" if ok else "MISSED"
print("\ntargets (this run):")
for name in ("serve", "tunnel"):
    hs, msg, mb = cost[name]
    if floor and hs:
        print(f"  {name}: CPU per handshake {ratio(hs, floor)}x the crypto floor (target <= 2): {verdict(hs <= 2 * floor)}")
    if msg and best(1):
        print(f"  {name}: CPU per echo message {ratio(msg, best(1))}x the better of HAProxy and nginx (target <= 0.8): {verdict(msg <= 0.8 * best(1))}")
    if mb and cost['haproxy'][2] and cost['nginx'][2]:
        print(f"  {name}: CPU per bulk MB {ratio(mb, cost['haproxy'][2])}x HAProxy's, {ratio(mb, cost['nginx'][2])}x nginx's (target < 1 both): "
              f"{verdict(mb < cost['haproxy'][2] and mb < cost['nginx'][2])}")
added = lambda pair, key: R[pair]["rtt"]["latency_ms"][key] - R["backend"]["rtt"]["latency_ms"][key]
print(f"  tunnel pair: added round trip p50 ours +{added('ourpair', 'p50'):.3f} ms, stunnel's +{added('stunnelpair', 'p50'):.3f} ms "
      f"(target: at most stunnel's): {verdict(added('ourpair', 'p50') <= added('stunnelpair', 'p50'))}")
print(f"\nratios against HAProxy and nginx (CPU per unit, lower is better):")
for name in ("serve", "tunnel"):
    print(f"  {name}: handshake {ratio(cost[name][0], cost['haproxy'][0])} / {ratio(cost[name][0], cost['nginx'][0])}, "
          f"echo message {ratio(cost[name][1], cost['haproxy'][1])} / {ratio(cost[name][1], cost['nginx'][1])}, "
          f"bulk MB {ratio(cost[name][2], cost['haproxy'][2])} / {ratio(cost[name][2], cost['nginx'][2])}")
PY
