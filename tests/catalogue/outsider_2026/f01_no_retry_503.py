"""FLAW: no retry at all (a 503/429 fails the generation). Otherwise careful."""
EXPECTED = "retries"
def generate(ctx):
    http = ctx.http_client(timeout=30)
    r = http.post(f"{ctx.base_url}/images/generations", json=ctx.request, headers={"Authorization": f"Bearer {ctx.api_key}"})
    r.raise_for_status()
    return http.get(r.json()["images"][0]["url"]).raise_for_status().content
