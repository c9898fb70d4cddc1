#!/usr/bin/env bash
# Renewals per second of one `ca serve` (issue 17) beside `serve`'s full mTLS handshakes per second, in one run,
# with the server's CPU time per renewal and per handshake (utime + stime from /proc/PID/stat).
#   - a renewal: a new TLS 1.3 connection presenting the current certificate, a new P-256 key and CSR (made by the
#     client), the CA's checks, its signature, one store transaction (SQLite), the PKCS#7 answer;
#   - a handshake: `securechannel bench --mode handshake` (new connection, full mTLS handshake, one echo, close).
# Target: renewals/s at least half of handshakes/s.
# Usage: Benchmarks/est-renewals.sh [SECONDS] [CONCURRENCY] [ROUNDS]   (default 10 s, 4 in flight, 3 rounds)
#   SECURECHANNEL_BIN=PATH measures that binary instead of building this checkout (to compare two builds).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CONCURRENCY=${2:-4}
ROUNDS=${3:-3}
if [ -z "${SECURECHANNEL_BIN:-}" ]; then swift build -c release --product securechannel >/dev/null; fi
SC="${SECURECHANNEL_BIN:-$PWD/.build/release/securechannel}"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
"$SC" ca init --dir root --name "Bench Root" --intermediates >/dev/null
"$SC" ca init --dir issuing --parent root --name "Bench Issuing" >/dev/null
"$SC" ca issue server --dir issuing --name est --dns localhost --ip 127.0.0.1 >/dev/null
"$SC" ca issue server --dir issuing --name jill --dns localhost --ip 127.0.0.1 >/dev/null
"$SC" ca issue client --dir issuing --name chris >/dev/null
cp root/ca.crt bundle.crt

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)
wait_port() { for _ in $(seq 1 100); do grep -o "listening on 127.0.0.1:[0-9]*" "$1" | cut -d: -f2 && return; sleep 0.1; done; exit 1; }

"$SC" ca serve --dir issuing --listen 127.0.0.1:0 --cert issuing/est.crt --key issuing/est.key \
    --rate-limit 1000000 > ca.log 2>&1 &
PIDS+=($!); CA_PID=$!
CA_PORT=$(wait_port ca.log)
"$SC" serve --listen 127.0.0.1:0 --cert issuing/jill.crt --key issuing/jill.key --ca bundle.crt \
    --allow-any-client > serve.log 2>&1 &
PIDS+=($!); SERVE_PID=$!
SERVE_PORT=$(wait_port serve.log)

# Rounds, each a renewal run then a handshake run: the machine's speed drifts by up to 30 % within minutes, so each
# round's ratio is taken in one stretch of time and the median round is reported (as compare.sh does).
for round in $(seq 1 "$ROUNDS"); do
    before=$(cpu "$CA_PID")
    # By address, as `bench` below connects to serve: a name would add a resolver lookup per renewal to the client.
    "$SC" ca bench-renew --ca-url "https://127.0.0.1:$CA_PORT" --cert issuing/chris.crt --key issuing/chris.key \
        --ca bundle.crt --seconds "$SECONDS_RUN" --concurrency "$CONCURRENCY" > "renew-$round.json"
    after=$(cpu "$CA_PID")
    echo $((after - before)) > "ca-cpu-$round"
    before=$(cpu "$SERVE_PID")
    "$SC" bench --connect "127.0.0.1:$SERVE_PORT" --server-name localhost --cert issuing/chris.crt \
        --key issuing/chris.key --ca bundle.crt --mode handshake --connections "$CONCURRENCY" \
        --duration "$SECONDS_RUN" --json > "handshake-$round.json"
    after=$(cpu "$SERVE_PID")
    echo $((after - before)) > "serve-cpu-$round"
done

python3 - "$ROUNDS" "$ticks" <<'PY'
import json, statistics, sys
rounds, ticks = int(sys.argv[1]), int(sys.argv[2])
print("| round | renewals/s · CA CPU µs each | handshakes/s · serve CPU µs each | ratio | failures |")
print("|---:|---:|---:|---:|---:|")
ratios, cpu_ratios = [], []
for r in range(1, rounds + 1):
    renew = json.load(open(f"renew-{r}.json"))
    hand = json.load(open(f"handshake-{r}.json"))
    ca_cpu = int(open(f"ca-cpu-{r}").read())
    serve_cpu = int(open(f"serve-cpu-{r}").read())
    hs = hand.get("handshakes_per_second") or 0
    hcount = hand.get("messages") or 0  # one echo per handshake in this mode
    rps = renew["renewalsPerSecond"]
    ca_each = ca_cpu / ticks * 1e6 / max(renew["renewals"], 1)
    serve_each = serve_cpu / ticks * 1e6 / max(hcount, 1)
    ratio = rps / hs if hs else 0
    ratios.append(ratio)
    if ca_each:
        cpu_ratios.append(serve_each / ca_each)
    print(f"| {r} | {rps:,.1f} · {ca_each:,.0f} | {hs:,.1f} · {serve_each:,.0f} | {ratio:.2f} | {renew['failures']} + {hand.get('errors', 0)} |")
print(f"\nrenewals/s over handshakes/s, median of {rounds} rounds: {statistics.median(ratios):.2f} (target: at least 0.50; rounds {min(ratios):.2f}-{max(ratios):.2f})")
if cpu_ratios:
    print(f"serve's CPU per handshake over the CA's CPU per renewal, median: {statistics.median(cpu_ratios):.2f}")
PY
