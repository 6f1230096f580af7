"""FLAW: openai SDK with max_retries=0 via with_options (no retry)."""
EXPECTED = "retries"
import openai
def generate(ctx):
    client = openai.OpenAI(base_url=ctx.base_url, api_key=ctx.api_key, http_client=ctx.http_client())
    result = client.with_options(max_retries=0, timeout=30).images.generate(
        model=ctx.request["model"], prompt=ctx.request["prompt"], extra_body={"seed": ctx.request["seed"]})
    url = result.data[0].url if result.data else result.model_extra["images"][0]["url"]
    return ctx.http_client(timeout=30).get(url).raise_for_status().content
