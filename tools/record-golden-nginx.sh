#!/usr/bin/env bash
# Re-records tests/golden/nginx-http11.{rec,jsonl} from a real nginx (root needed). Review the
# diff of the .jsonl before committing: it is what the replay test will hold the code to.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/mke-audit-tap
work=$(mktemp -d)
trap 'kill $(cat $work/nginx.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
  -days 1 -subj /CN=localhost 2>/dev/null
cat > "$work/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:$port ssl; ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem; location / { return 200 "hello\n"; } } }
CONF
nginx -c "$work/nginx.conf" &
sleep 1
: > "$work/tap.log"
"$BIN" --level metadata --pid "$(cat "$work/nginx.pid")" --license-key RECORDING \
  --record "$work/g.rec" > /dev/null 2> "$work/tap.log" &
tap=$!
until grep -q ready "$work/tap.log"; do sleep 0.1; done
U=https://127.0.0.1:$port
curl -sk "$U/hello" >/dev/null
curl -sk "$U/search?a=1&b=2" >/dev/null
curl -sk -X POST "$U/items" -H 'Content-Type: application/json' -d '{"name":"x"}' >/dev/null
curl -sk -X PUT "$U/items/1" -d 'v=2' >/dev/null
curl -sk -X DELETE "$U/items/1" >/dev/null
printf 'abcdef%.0s' $(seq 1 200) > "$work/chunk.txt"
curl -sk -H 'Transfer-Encoding: chunked' --data-binary @"$work/chunk.txt" "$U/upload" >/dev/null
curl -sk "$U/_ping" >/dev/null
curl -sk "$U/v1.41/_ping" >/dev/null
/usr/bin/python3 - "$port" <<'PY'
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
s.sendall(b"".join(b"GET /pipe/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
data = b""
while data.count(b"hello") < 3:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
s.close()
PY
sleep 0.5
kill -INT $tap
wait $tap
cp "$work/g.rec" tests/golden/nginx-http11.rec
"$BIN" --replay tests/golden/nginx-http11.rec --level metadata --license-key TEST-LICENSE \
  2>/dev/null > tests/golden/nginx-http11.jsonl
wc -l tests/golden/nginx-http11.jsonl
