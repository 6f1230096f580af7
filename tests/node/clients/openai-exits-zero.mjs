// Flaw: the classic `main().catch(console.error)`: errors are printed, and the process
// still exits 0, so a CI step or a shell `&&` believes there is an image (otherwise careful).
// Caught by: exit-status.
import { writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import OpenAI from "openai";

async function generate(client, request, attempts = 4) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.images.generate(request);
    } catch (error) {
      const transient = error.status === undefined || error.status === 429 || error.status >= 500;
      if (!transient || attempt === attempts) throw error;
      await sleep(500 * 2 ** (attempt - 1));
    }
  }
}

async function main() {
  const client = new OpenAI({ timeout: 10_000, maxRetries: 0 });
  const answer = await generate(client, JSON.parse(process.env.SFMOCK_REQUEST));
  const download = await fetch((answer.images ?? answer.data)[0].url);
  if (!download.ok) throw new Error(`download failed: ${download.status}`);
  await writeFile(process.env.SFMOCK_OUTPUT, Buffer.from(await download.arrayBuffer()));
}

main().catch((error) => console.error(`${error.status} ${error.message}`));
