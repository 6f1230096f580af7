// Flaw: the classic `main().catch(console.error)`: errors are printed, and the process
// still exits 0, so a CI step or a shell `&&` believes there is an image.
// Caught by: exit-status.
import { writeFile } from "node:fs/promises";
import OpenAI from "openai";

async function main() {
  const client = new OpenAI({ timeout: 10_000 });
  const answer = await client.images.generate(JSON.parse(process.env.SFMOCK_REQUEST));
  const download = await fetch(answer.data[0].url);
  if (!download.ok) throw new Error(`download failed: ${download.status}`);
  await writeFile(process.env.SFMOCK_OUTPUT, Buffer.from(await download.arrayBuffer()));
}

main().catch((error) => console.error(`${error.status} ${error.message}`));
