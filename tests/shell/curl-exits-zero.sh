#!/usr/bin/env bash
# Flaw: when it gives up it says so, and still exits 0 (`exit` after a message, no status).
# Caught by: exit-status.
set -u
answer=$(mktemp) headers=$(mktemp)
trap 'rm -f "$answer" "$headers"' EXIT
wait=0.5
for attempt in 1 2 3 4; do
  status=$(curl -sS --max-time 10 -o "$answer" -D "$headers" -w '%{http_code}' \
    -H "Authorization: Bearer $SILICONFLOW_API_KEY" -H 'Content-Type: application/json' \
    --data "$SFMOCK_REQUEST" "$SILICONFLOW_BASE_URL/images/generations") || status=000 # no whole answer: curl failed
  trace=$(grep -i '^x-siliconcloud-trace-id:' "$headers" | tr -d '\r' | cut -d' ' -f2)
  case "$status" in
    200) break ;;
    000 | 429 | 500 | 502 | 503 | 504) echo "attempt $attempt: $status trace=$trace" >&2 ;;
    *) echo "generation failed: $status trace=$trace" >&2; exit ;;
  esac
  if [ "$attempt" = 4 ]; then echo "generation failed: $status trace=$trace (gave up)" >&2; exit; fi
  after=$(grep -i '^retry-after:' "$headers" | tr -d '\r' | cut -d' ' -f2)
  sleep "$(awk "BEGIN { a = ${after:-0} + 0; print (a > $wait ? a : $wait) }")"
  wait=$(awk "BEGIN { print $wait * 2 }")
done
url=$(grep -o '"url":"[^"]*"' "$answer" | head -n 1 | cut -d'"' -f4)
if [ -z "$url" ]; then echo "no image URL in the answer (trace=$trace)" >&2; exit; fi
status=$(curl -sS --max-time 10 -o "$SFMOCK_OUTPUT" -D "$headers" -w '%{http_code}' "$url") || status=000
if [ "$status" != 200 ]; then
  echo "download failed: $status request-id=$(grep -i '^x-amz-request-id:' "$headers" | tr -d '\r' | cut -d' ' -f2)" >&2
  rm -f "$SFMOCK_OUTPUT"
  exit
fi
echo "$SFMOCK_OUTPUT"
