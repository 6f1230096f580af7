// A careful client on the `openai` npm package: retries with growing back-off, a timeout,
// the download without the key, the image saved, and an exit status that says what
// happened. Errors name the status and the trace id, never the key.
import { writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";

// The SDK's own retries cover failures before the answer's headers, not a body cut after
// them (fetch's TypeError "terminated"): this loop retries both, so the SDK's are off.
const client = new OpenAI({ timeout: 10_000, maxRetries: 0 }); // reads OPENAI_BASE_URL and OPENAI_API_KEY
const request = JSON.parse(process.env.SFMOCK_REQUEST);

async function generate(attempts = 4) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.images.generate(request);
    } catch (error) {
      const transient = error.status === undefined || error.status === 429 || error.status >= 500;
      if (!transient || attempt === attempts) throw error;
      const after = Number(error.headers?.get?.("retry-after") ?? 0) * 1000;
      await sleep(Math.max(after, 500 * 2 ** (attempt - 1)));
    }
  }
}

try {
  const answer = await generate();
  const url = (answer.images ?? answer.data)[0].url;
  const download = await fetch(url); // pre-signed: no Authorization header
  if (!download.ok) {
    console.error(`download failed: ${download.status} request-id=${download.headers.get("x-amz-request-id")}`);
    process.exit(1);
  }
  await writeFile(process.env.SFMOCK_OUTPUT, Buffer.from(await download.arrayBuffer()));
  console.log(process.env.SFMOCK_OUTPUT);
} catch (error) {
  const trace = error.headers?.get?.("x-siliconcloud-trace-id");
  console.error(`generation failed: ${error.status ?? error.name} ${error.message} trace=${trace}`);
  process.exit(1);
}
