#!/usr/bin/env bash
# The OpenAI-compatible HTTP API of a real slq-server (--http-port), driven by curl and by the
# official openai npm client, plus a bounded load of 200 concurrent streams. Models: stories260K
# (llama2.c, no chat template) and tinystories-656k served from a folder whose
# tokenizer_config.json adds a ChatML chat template (symlinks to the shared files: nothing copied).
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../openai/npm_install.sh"

chat_dir=$STATE/chat-656k
mkdir -p "$chat_dir"
for f in config.json generation_config.json model.safetensors special_tokens_map.json tokenizer.json; do
  ln -s "$SHARED/models/tinystories-656k/$f" "$chat_dir/$f"
done
python3 - "$SHARED/models/tinystories-656k/tokenizer_config.json" "$chat_dir/tokenizer_config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["chat_template"] = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
                        " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
json.dump(cfg, open(sys.argv[2], "w"))
PY

HTTP_PORT=$(free_port)
start_server --http-port "$HTTP_PORT" \
  --serve-models "$SHARED/models/stories260k/stories260K.bin,$chat_dir,$SHARED/models/docs-19m"
BASE=http://127.0.0.1:$HTTP_PORT
TOKEN=$(cat "$STATE/token")
for _ in $(seq 50); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done

# http METHOD PATH [BODY] -> prints the body to $STATE/body, returns; HTTP status in $CODE.
http() {
  local method=$1 path=$2 body=${3:-}
  CODE=$(curl -s -o "$STATE/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' ${body:+--data "$body"} "$BASE$path")
}
field() { json_field "$1" < "$STATE/body"; }

CODE=$(curl -s -o "$STATE/body" -w '%{http_code}' "$BASE/v1/models")
check "no token -> 401 with OpenAI's error JSON" \
  test "$CODE" = 401 -a "$(field "['error']['code']")" = invalid_api_key
http GET /v1/models
check "GET /v1/models lists the served models" \
  test "$CODE" = 200 -a "$(field "['object']")" = list -a "$(python3 -c 'import json,sys; print(sorted(m["id"] for m in json.load(sys.stdin)["data"]))' < "$STATE/body")" = "['chat-656k', 'docs-19m', 'stories260K']"

req='{"model":"stories260K","prompt":"Once upon a time","max_tokens":16,"temperature":0}'
http POST /v1/completions "$req"
whole=$(field "['choices'][0]['text']")
check "POST /v1/completions (greedy)" test "$CODE" = 200 -a -n "$whole" -a "$(field "['object']")" = text_completion
check "usage counts" test "$(field "['usage']['completion_tokens']")" -le 16 -a \
  "$(field "['usage']['total_tokens']")" = "$(( $(field "['usage']['prompt_tokens']") + $(field "['usage']['completion_tokens']") ))"

curl -sN -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  --data "${req%\}},\"stream\":true}" "$BASE/v1/completions" > "$STATE/sse"
streamed=$(python3 - "$STATE/sse" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert lines[-1] == "data: [DONE]", lines[-1]
print("".join(json.loads(l[6:])["choices"][0]["text"] for l in lines[:-1]), end="")
PY
)
check "streamed (SSE, ends with data: [DONE]) = non-streamed" test "$streamed" = "$whole"
check "SSE content type" bash -c "curl -s -D - -o /dev/null -H 'Authorization: Bearer $TOKEN' \
  --data '{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"max_tokens\":2,\"stream\":true}' $BASE/v1/completions | grep -qi '^content-type: text/event-stream'"

# The same request over gRPC (the same engine) gives the same greedy text (slqctl echoes the prompt).
grpc_text=$(ctl generate stories260K "Once upon a time" --max-tokens 16 --temperature 0 2>/dev/null)
check "HTTP text = gRPC Generate text" test "$grpc_text" = "Once upon a time$whole"

http POST /v1/completions '{"model":"stories260K","prompt":"Once upon a time","max_tokens":40,"temperature":0,"stop":[" was"]}'
check "stop string: finish_reason stop, text cut before it" \
  test "$(field "['choices'][0]['finish_reason']")" = stop -a "$(field "['choices'][0]['text'].count(' was')")" = 0
http POST /v1/completions '{"model":"stories260K","prompt":"Once","max_tokens":6,"logprobs":1}'
check "logprobs: one per token" test "$(field "['usage']['completion_tokens']")" = "$(field "['choices'][0]['logprobs']['token_logprobs'].__len__()")"
http POST /v1/completions '{"model":"stories260K","prompt":[1, 403, 407],"max_tokens":3}'
check "prompt as token ids" test "$CODE" = 200 -a "$(field "['usage']['prompt_tokens']")" = 3

http POST /v1/completions '{"model":"stories260K","prompt":"x","n":2}'
check "n=2 -> 400 naming n" test "$CODE" = 400 -a "$(field "['error']['param']")" = n
http POST /v1/completions '{"model":"stories260K","prompt":"x","temperature":7}'
check "temperature out of range -> 400" test "$CODE" = 400 -a "$(field "['error']['type']")" = invalid_request_error
http POST /v1/completions '{"model":"nope","prompt":"x"}'
check "unknown model -> 404 model_not_found" test "$CODE" = 404 -a "$(field "['error']['code']")" = model_not_found
http POST /v1/completions '{not json'
check "malformed JSON -> 400" test "$CODE" = 400
http GET /v1/engines
check "unknown route -> 404" test "$CODE" = 404
http POST /v1/chat/completions '{"model":"stories260K","messages":[{"role":"user","content":"hi"}]}'
check "chat without a chat template -> 400 saying so" test "$CODE" = 400 -a \
  "$(field "['error']['message'].find('no chat template') >= 0")" = True
http POST /v1/chat/completions '{"model":"chat-656k","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":8}'
check "chat completion with the model's template" \
  test "$CODE" = 200 -a "$(field "['choices'][0]['message']['role']")" = assistant -a "$(field "['object']")" = chat.completion

# A client that disconnects cancels its request (the engine counts it CANCELLED).
before=$(curl -s "127.0.0.1:$METRICS_PORT/metrics" | awk '/^slq_inference_requests_total\{.*model="docs-19m".*CANCELLED/ {s+=$2} END {print s+0}')
curl -sN --max-time 1 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  --data '{"model":"docs-19m","prompt":"The kernel","max_tokens":1000,"temperature":0.8,"seed":1,"stream":true}' \
  "$BASE/v1/completions" > "$STATE/cut" || true
cancelled=0
for _ in $(seq 50); do
  now=$(curl -s "127.0.0.1:$METRICS_PORT/metrics" | awk '/^slq_inference_requests_total\{.*model="docs-19m".*CANCELLED/ {s+=$2} END {print s+0}')
  [ "$now" -gt "$before" ] && { cancelled=1; break; }
  sleep 0.1
done
if grep -q '\[DONE\]' "$STATE/cut"; then
  echo "SKIP: disconnect test (the generation finished within 1 s)"
else
  check "client disconnect cancels the request (slq_inference_requests_total CANCELLED)" test "$cancelled" = 1
fi

check "HTTP requests appear in the inference metrics" bash -c \
  "curl -s 127.0.0.1:$METRICS_PORT/metrics | grep -q 'slq_inference_requests_total{.*model=\"stories260K\".*status=\"OK\"'"

check "openai npm client (streaming and not)" node "$here/../openai/openai_client_test.mjs" "$BASE/v1" "$TOKEN" stories260K chat-656k
check "200 concurrent HTTP streams, 0 errors" node "$here/../openai/load_test.mjs" "$BASE/v1" "$TOKEN" stories260K 200
stop_server

# HTTPS with the gRPC server's TLS files, then mTLS (--tls-client-ca).
pki=$STATE/pki
mkdir -p "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=slq-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
issue() {  # issue NAME CN EXT
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
    -extfile "$pki/$1.ext" -out "$pki/$1.pem" 2>/dev/null
}
issue server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
issue client slq-client "basicConstraints=CA:FALSE"
tls_server() {  # tls_server [extra flags]: starts slq-server with TLS on new ports, waits for /health
  PORT=$(free_port)
  HTTP_PORT=$(free_port)
  "$SERVER_BIN" --listen "127.0.0.1:$PORT" --metrics-listen "" --data-dir "$STATE/data" \
    --auth-token-file "$STATE/token" --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
    --http-port "$HTTP_PORT" "$@" >> "$STATE/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 100); do
    curl -s --cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client.key" \
      "https://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
}
tls_server
check "HTTPS: /v1/models with the CA and the token" bash -c "curl -sf --cacert '$pki/ca.pem' \
  -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:$HTTP_PORT/v1/models | grep -q '\"object\":\"list\"'"
check "HTTPS: plaintext HTTP refused" bash -c "! curl -sf --max-time 3 http://127.0.0.1:$HTTP_PORT/health"
check "HTTPS: untrusted server refused by the client" bash -c "! curl -sf --max-time 3 https://127.0.0.1:$HTTP_PORT/health"
stop_server
tls_server --tls-client-ca "$pki/ca.pem"
check "mTLS: no client certificate refused" bash -c "! curl -sf --max-time 3 --cacert '$pki/ca.pem' \
  -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:$HTTP_PORT/v1/models"
check "mTLS: a client certificate of the CA accepted" bash -c "curl -sf --cacert '$pki/ca.pem' --cert '$pki/client.pem' \
  --key '$pki/client.key' -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:$HTTP_PORT/v1/models | grep -q list"
stop_server
summary
