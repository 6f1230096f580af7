// Flaw: trusts the SDK's own retries (2, with growing back-off), which do not cover a body
// cut after the answer's headers (the SDK reads the body outside its retry loop); otherwise careful.
// Caught by: retries.
import { writeFile } from "node:fs/promises";
import OpenAI from "openai";

const client = new OpenAI({ timeout: 10_000 }); // reads OPENAI_BASE_URL and OPENAI_API_KEY
const request = JSON.parse(process.env.SFMOCK_REQUEST);

try {
  const answer = await client.images.generate(request);
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
