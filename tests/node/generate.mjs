// One image through the Vercel AI SDK (@ai-sdk/openai-compatible), against sfmock.
// Usage: SFMOCK_API_URL=http://127.0.0.1:8000/v1 node generate.mjs [--fetch=images|strip|none]
//   images (default): the README's fetch, on sfmock's defaults (images on an origin of their own)
//   strip: the README's other fetch, for sfmock with one origin (--image-port same)
//   none: the SDK as it comes
// Prints one JSON line: {"ok": true, "bytes": N, "png": true} or {"ok": false, "error": "..."}.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateImage } from "ai";

// The few lines of user code the README documents. Image URLs are pre-signed, on the object
// store's own origin; the SDK refuses to download from a local address there (an SSRF guard),
// so fetch the images here, without the API key, and hand the SDK the b64_json it asks for.
const imagesWithoutKey = async (url, init) => {
  const answer = await fetch(url, init);
  if (!answer.ok || !String(url).endsWith("/images/generations")) return answer;
  const body = await answer.json();
  for (const image of body.data) {
    const download = await fetch(image.url); // pre-signed: no Authorization header
    if (!download.ok) throw new Error(`image download failed: ${download.status}`);
    image.b64_json = Buffer.from(await download.arrayBuffer()).toString("base64");
  }
  return Response.json(body, { status: answer.status, headers: answer.headers });
};

// With one origin (--image-port same) the SDK downloads itself, sending the API's headers:
// drop the key from image downloads.
const presignedDownloadsWithoutKey = (url, init = {}) => {
  if (new URL(url).pathname.startsWith("/temporary/outputs/")) {
    const headers = new Headers(init.headers);
    headers.delete("authorization");
    init = { ...init, headers };
  }
  return fetch(url, init);
};

const choice = (process.argv.find((arg) => arg.startsWith("--fetch=")) ?? "--fetch=images").slice(8);
const fetches = { images: imagesWithoutKey, strip: presignedDownloadsWithoutKey, none: undefined };

const provider = createOpenAICompatible({
  name: "siliconflow",
  baseURL: process.env.SFMOCK_API_URL,
  apiKey: "sk-node-0123456789",
  fetch: fetches[choice],
});

try {
  const { image } = await generateImage({
    model: provider.imageModel("Kwai-Kolors/Kolors"),
    prompt: "a lighthouse at dawn",
    size: "1024x1024",
    maxRetries: 0,
  });
  const bytes = image.uint8Array;
  const png = bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  console.log(JSON.stringify({ ok: true, bytes: bytes.length, png }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error?.message ?? error).slice(0, 300) }));
}
