#!/usr/bin/env bash
# The first run: the auditor at work on a machine with no API server of its own. Starts, on
# loopback in a temporary directory, a TLS 1.3 nginx and a dockerd with a TLS port and a client
# bundle (CA, server certificate, client certificate), the auditor at level request against both,
# then makes a few curl calls to nginx and docker CLI calls with the bundle, and prints the audit
# lines the auditor wrote for them. Everything it started is stopped and its temporary state
# removed at the end, on Ctrl-C and on error. `tools/run.sh` without targets runs it.
#
#   tools/demo.sh [--keep DIR] [auditor options, e.g. --level metadata]
#
# --keep DIR: also copy the audit lines (audit.jsonl), nginx's access log, dockerd's debug log and
# the auditor's log there (for a test to check). Needs root (BPF); the binary is
# $MAT_BINARY or build/mke-audit-tap (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"

keep=""
if [ "${1:-}" = "--keep" ]; then
  keep=$2
  shift 2
fi
BIN=${MAT_BINARY:-$PWD/build/mke-audit-tap}
[ -x "$BIN" ] || bash tools/build.sh >&2
for tool in nginx dockerd docker curl openssl python3; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is needed (run tools/setup.sh)" >&2; exit 1; }
done

say() { printf 'demo: %s\n' "$*" >&2; }
# Short: dockerd's exec-root holds containerd's socket, whose path must fit in 108 bytes.
work=$(mktemp -d /tmp/mat-demo.XXXXXX)
nginx_pid="" dockerd_pid="" tap_pid=""

stop() {  # stop PID SIGNAL: signal it and wait up to 30 s for it to go
  local pid=$1 sig=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$tap_pid" INT
  stop "$dockerd_pid" TERM
  stop "$nginx_pid" QUIT
  if [ -n "$keep" ]; then
    mkdir -p "$keep"
    for f in audit.jsonl auditor.log dockerd.log nginx/access.log; do
      [ -e "$work/$f" ] && cp "$work/$f" "$keep/" || true
    done
  fi
  umount -R "$work/exec" 2>/dev/null || true
  rm -rf "$work"
  case $rc in
    0) ;;
    130 | 143) say "interrupted; everything it started is stopped and $work removed" ;;
    *) say "failed (exit $rc); everything it started is stopped and $work removed" ;;
  esac
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 10))); do "$@" && return 0; sleep 0.1; done
  say "$what did not happen within $seconds s"
  return 1
}

say "temporary directory $work"
# ---- PKI: a CA, a server certificate for 127.0.0.1, a client bundle (ca.pem cert.pem key.pem)
pki=$work/pki bundle=$work/bundle
mkdir -p "$pki" "$bundle"
ossl() { openssl "$@" 2>/dev/null >/dev/null; }
ossl req -x509 -newkey rsa:2048 -nodes -sha256 -days 1 -subj "/CN=mke-audit-tap demo CA" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$pki/server.ext"
printf 'extendedKeyUsage=clientAuth\n' >"$pki/client.ext"
issue() {  # issue NAME SUBJECT EXTFILE
  ossl req -new -newkey rsa:2048 -nodes -sha256 -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr"
  ossl x509 -req -sha256 -days 1 -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
    -CAcreateserial -extfile "$pki/$3" -out "$pki/$1.pem"
}
issue server /CN=localhost server.ext
issue client "/O=mke-audit-tap demo/CN=demo-admin" client.ext
cp "$pki/ca.pem" "$bundle/ca.pem"
cp "$pki/client.pem" "$bundle/cert.pem"
cp "$pki/client.key" "$bundle/key.pem"
chmod 600 "$pki"/*.key "$bundle/key.pem"

# ---- nginx: TLS 1.3 only, client certificates optional, an access log as ground truth
nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
  log_format demo '\$request_method \$request_uri \$status';
  access_log $work/nginx/access.log demo;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port ssl; ssl_protocols TLSv1.3;
    ssl_certificate $pki/server.pem; ssl_certificate_key $pki/server.key;
    ssl_client_certificate $pki/ca.pem; ssl_verify_client optional;
    location / { return 200 "hello from the demo nginx\n"; }
    location /api/ { default_type application/json; return 200 '{"items":[]}\n'; }
  }
}
CONF
nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" \
  </dev/null >"$work/nginx/stderr.log" 2>&1 &
nginx_pid=$!
say "nginx (TLS 1.3) on https://127.0.0.1:$nginx_port, pid $nginx_pid"

# ---- dockerd: TLS port with client certificates, private sockets, data and exec roots
docker_port=$(free_port)
dockerd --debug --tlsverify --tlscacert="$pki/ca.pem" --tlscert="$pki/server.pem" \
  --tlskey="$pki/server.key" -H "tcp://127.0.0.1:$docker_port" -H "unix://$work/docker.sock" \
  --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/docker.pid" \
  --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
  --userland-proxy=false </dev/null >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
say "dockerd (TLS, client certificates) on tcp://127.0.0.1:$docker_port, pid $dockerd_pid"
wait_for 60 "dockerd's API" grep -q "API listen on 127.0.0.1" "$work/dockerd.log" || {
  tail -20 "$work/dockerd.log" >&2
  exit 1
}
wait_for 10 "nginx start" curl -so /dev/null --cacert "$pki/ca.pem" "https://127.0.0.1:$nginx_port/ready"

# ---- the auditor, against both (each --pid covers the process and its descendants)
"$BIN" --level request --pid "$nginx_pid" --pid "$dockerd_pid" --client-ca "$pki/ca.pem" \
  --license-key DEMO-LICENSE "$@" >"$work/audit.jsonl" 2>"$work/auditor.log" &
tap_pid=$!
wait_for 60 "the auditor's ready line" grep -q "ready" "$work/auditor.log" || {
  cat "$work/auditor.log" >&2
  exit 1
}
say "auditor running, pid $tap_pid; its log:"
sed 's/^/  | /' "$work/auditor.log" >&2

# ---- the calls
N="https://127.0.0.1:$nginx_port"
calls=0
call() {  # runs a client command; its output is shown only when it fails
  printf '  $ %s\n' "$*" >&2
  "$@" >"$work/call.out" 2>&1 || { cat "$work/call.out" >&2; return 1; }
  calls=$((calls + 1))
}
CURL=(curl -sS --cacert "$pki/ca.pem")
CERT=(--cert "$bundle/cert.pem" --key "$bundle/key.pem")
say "calls to nginx:"
call "${CURL[@]}" "$N/"
call "${CURL[@]}" "${CERT[@]}" "$N/api/items?limit=2"
call "${CURL[@]}" "${CERT[@]}" -X POST -H 'Content-Type: application/json' \
  -d '{"name":"demo"}' "$N/api/items"
call "${CURL[@]}" -X DELETE "$N/api/items/1"
export DOCKER_HOST="tcp://127.0.0.1:$docker_port" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$bundle"
export DOCKER_CONFIG="$work/cli"
say "docker CLI calls (client bundle $bundle, user demo-admin):"
call docker version
call docker ps
call docker info
call docker network ls
call docker volume create demo-volume
call docker volume ls
call docker volume rm demo-volume

sleep 1  # the auditor drains its ring buffer every 20 ms; responses complete asynchronously
stop "$tap_pid" INT
tap_pid=""

# ---- what was audited, against what the servers saw
nginx_requests=$(grep -vc ' /ready ' "$work/nginx/access.log" || true)
docker_calls=$(grep -c 'msg="Calling ' "$work/dockerd.log" || true)
docker_ignored=$(grep -Ec 'msg="Calling [A-Z]+ (/v[0-9.]+)?/(_ping|version|info)"' \
  "$work/dockerd.log" || true)
lines=$(grep -c '"auditID"' "$work/audit.jsonl" || true)
echo "== audit lines (stdout of mke-audit-tap, one JSON object per line) =="
if command -v jq >/dev/null; then
  jq -r '.audit | "\(.requestReceivedTimestamp)  \(.user.username)  \(.verb) \(.requestURI) -> \(.responseStatus.code // "-")   (kind \(.kind), level \(.level))"' \
    "$work/audit.jsonl"
  echo "== the first line in full =="
  head -1 "$work/audit.jsonl" | jq .
else
  cat "$work/audit.jsonl"
fi
echo "== summary =="
echo "demo: $calls client commands; nginx logged $nginx_requests request(s) (access log)," \
  "dockerd routed $docker_calls API call(s) (debug log), $docker_ignored of them /_ping," \
  "/version or /info, which the default ignore list leaves out, as MKE does"
echo "demo: the auditor wrote $lines audit line(s)"
tail -3 "$work/auditor.log" | sed 's/^/  | /' >&2
