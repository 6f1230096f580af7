// Make one picture with SiliconFlow's image API and save it.  Usage: node fetch-careful.mjs [prompt]
// Plain fetch, no SDK: 4 tries on 429, 5xx and network trouble (a cut body included) with
// doubling waits, a 4xx is final. Flaw: a fresh random seed on every try, so a retry asks for
// another picture than the first try did. Caught by: same-body.
import { writeFile } from "node:fs/promises";

const base = process.env.SILICONFLOW_BASE_URL ?? "https://api.siliconflow.cn/v1";
const key = process.env.SILICONFLOW_API_KEY;
const out = process.env.SFMOCK_OUTPUT ?? "picture.png";
const request = () => JSON.stringify({
  model: "Kwai-Kolors/Kolors",
  prompt: process.argv[2] ?? "a watercolor fox asleep in the snow",
  image_size: "1024x1024",
  seed: Math.floor(Math.random() * 1e9),
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function generate() {
  let failure;
  for (let attempt = 1; attempt <= 4; attempt++) {
    if (attempt > 1) await sleep(500 * 2 ** (attempt - 2));
    let res;
    try {
      res = await fetch(`${base}/images/generations`, {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: request(),
        signal: AbortSignal.timeout(20_000),
      });
      if (res.ok) return await res.json(); // inside the try: a body cut short is retried too
    } catch (err) {
      failure = err;
      continue;
    }
    const trace = res.headers.get("x-siliconcloud-trace-id");
    failure = new Error(`HTTP ${res.status} (trace ${trace}): ${(await res.text().catch(() => "")).slice(0, 200)}`);
    if (res.status !== 429 && res.status < 500) break;
  }
  throw failure;
}

try {
  const answer = await generate();
  const url = (answer.images ?? answer.data)?.[0]?.url;
  if (!url) throw new Error("the answer holds no image URL");
  const picture = await fetch(url);
  if (!picture.ok) throw new Error(`download: HTTP ${picture.status} (request id ${picture.headers.get("x-amz-request-id")})`);
  await writeFile(out, Buffer.from(await picture.arrayBuffer()));
  console.log(`saved ${out}`);
} catch (err) {
  console.error(`failed: ${err.message}`);
  process.exit(1);
}
