// Flaw: a hand-rolled loop around the SDK that retries every error, a 400 included
// (a request that is wrong stays wrong, and each retry may cost). Caught by: retries.
import { writeFile } from "node:fs/promises";
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0, timeout: 10_000 });
const request = JSON.parse(process.env.SFMOCK_REQUEST);
for (let attempt = 1; ; attempt++) {
  try {
    const answer = await client.images.generate(request);
    const download = await fetch(answer.data[0].url);
    if (!download.ok) throw Object.assign(new Error("download failed"), { status: download.status });
    await writeFile(process.env.SFMOCK_OUTPUT, Buffer.from(await download.arrayBuffer()));
    break;
  } catch (error) {
    console.error(`attempt ${attempt}: ${error.status} ${error.message}`);
    if (attempt === 4) process.exit(1);
    await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** attempt));
  }
}
