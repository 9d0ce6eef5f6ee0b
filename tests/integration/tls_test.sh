#!/usr/bin/env bash
# TLS and mTLS on the real server: a self-signed CA issues a server and a client certificate;
# slqctl connects with --tls-ca (and a client certificate for mTLS); plaintext and
# unverified clients are refused; auth still applies over TLS.
source "$(dirname "$0")/lib.sh"
pki=$STATE/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=slq-test-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
issue() {  # issue NAME CN [EXT]
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  printf '%s\n' "${3:-basicConstraints=CA:FALSE}" > "$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.pem" 2>/dev/null
}
issue server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
issue client slq-client
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rogue" \
  -keyout "$pki/rogue.key" -out "$pki/rogue.pem" 2>/dev/null

PORT=$(free_port)
METRICS_PORT=$(free_port)
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/token"
"$SERVER_BIN" --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$METRICS_PORT" \
  --data-dir "$STATE/data" --auth-token-file "$STATE/token" --allowed-roots "$SHARED/models" \
  --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" >> "$STATE/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
export SLQ_SERVER=127.0.0.1:$PORT SLQ_TOKEN_FILE=$STATE/token
for _ in $(seq 100); do ctl --tls-ca "$pki/ca.pem" health >/dev/null 2>&1 && break; sleep 0.1; done
check "TLS: health with the CA" ctl --tls-ca "$pki/ca.pem" health
check "TLS: authenticated list" ctl --tls-ca "$pki/ca.pem" list
expect_exit "TLS: plaintext client refused" 5 ctl --timeout 3 list
expect_exit "TLS: server not trusted without its CA" 5 ctl --timeout 3 --tls-ca "$pki/rogue.pem" list
expect_exit "TLS: wrong token still refused" 4 env SLQ_TOKEN_FILE=/dev/null "$CTL_BIN" --tls-ca "$pki/ca.pem" list
stop_server

# mTLS: the server requires a client certificate signed by the CA.
"$SERVER_BIN" --listen "127.0.0.1:$PORT" --metrics-listen "" --data-dir "$STATE/data" \
  --auth-token-file "$STATE/token" --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
  --tls-client-ca "$pki/ca.pem" >> "$STATE/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
mtls=(--tls-ca "$pki/ca.pem" --tls-cert "$pki/client.pem" --tls-key "$pki/client.key")
for _ in $(seq 100); do ctl "${mtls[@]}" health >/dev/null 2>&1 && break; sleep 0.1; done
check "mTLS: client certificate accepted" ctl "${mtls[@]}" list
expect_exit "mTLS: no client certificate refused" 5 ctl --timeout 3 --tls-ca "$pki/ca.pem" list
expect_exit "mTLS: client certificate from another CA refused" 5 \
  ctl --timeout 3 --tls-ca "$pki/ca.pem" --tls-cert "$pki/rogue.pem" --tls-key "$pki/rogue.key" list
stop_server
summary
