#!/usr/bin/env bash
# Make one picture with SiliconFlow and save it.  Usage: curl-retry-key-on-download.sh [prompt]
# curl's own retries (--retry 3 --retry-all-errors: 429, 5xx, timeouts, cut transfers, with
# doubling waits; a 4xx is an answer, not an error, without --fail).
# Flaw: the download sends the API key too, as every request to "the API" does. Caught by: downloads.
set -u
prompt=${1:-"a paper boat on a rainy street, 35mm"}
api=${SILICONFLOW_BASE_URL:-https://api.siliconflow.cn/v1}
auth="Authorization: Bearer $SILICONFLOW_API_KEY"
out=${SFMOCK_OUTPUT:-picture.png}
answer=$(mktemp) headers=$(mktemp)
trap 'rm -f "$answer" "$headers"' EXIT

body=$(printf '{"model":"Kwai-Kolors/Kolors","prompt":"%s","image_size":"1024x1024","seed":1234}' "$prompt")
code=$(curl -sS --retry 3 --retry-all-errors --max-time 20 -o "$answer" -D "$headers" -w '%{http_code}' \
  -H "$auth" -H 'Content-Type: application/json' -d "$body" "$api/images/generations") || code=000
trace=$(grep -i '^x-siliconcloud-trace-id:' "$headers" | tail -n 1 | tr -d '\r' | cut -d' ' -f2)
if [ "$code" != 200 ]; then
  echo "generation failed: HTTP $code trace $trace: $(head -c 200 "$answer")" >&2
  exit 1
fi
url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$answer" | head -n 1)
code=$(curl -sS --retry 3 --max-time 30 -H "$auth" -o "$out" -D "$headers" -w '%{http_code}' "$url") || code=000
if [ "$code" != 200 ]; then
  echo "download failed: HTTP $code request id $(grep -i '^x-amz-request-id:' "$headers" | tr -d '\r' | cut -d' ' -f2)" >&2
  rm -f "$out"
  exit 1
fi
echo "saved $out"
