// Flaw: retries turned off (maxRetries: 0), so one 503 or 429 ends the run.
// Caught by: retries.
import { writeFile } from "node:fs/promises";
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0, timeout: 10_000 });
try {
  const answer = await client.images.generate(JSON.parse(process.env.SFMOCK_REQUEST));
  const download = await fetch(answer.data[0].url);
  if (!download.ok) {
    console.error(`download failed: ${download.status} request-id=${download.headers.get("x-amz-request-id")}`);
    process.exit(1);
  }
  await writeFile(process.env.SFMOCK_OUTPUT, Buffer.from(await download.arrayBuffer()));
} catch (error) {
  console.error(`failed: ${error.status} ${error.message} trace=${error.headers?.get?.("x-siliconcloud-trace-id")}`);
  process.exit(1);
}
