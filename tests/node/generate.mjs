// One image through the Vercel AI SDK (@ai-sdk/openai-compatible), against sfmock.
// Usage: SFMOCK_API_URL=http://127.0.0.1:8000/v1 node generate.mjs [--no-custom-fetch]
// Prints one JSON line: {"ok": true, "bytes": N, "png": true} or {"ok": false, "error": "..."}.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateImage } from "ai";

// The few lines of user code the README documents: image downloads are pre-signed, so they
// go without the API key (the SDK sends the API's headers to a URL on the API's own origin).
const presignedDownloadsWithoutKey = (url, init = {}) => {
  if (new URL(url).pathname.startsWith("/temporary/outputs/")) {
    const headers = new Headers(init.headers);
    headers.delete("authorization");
    init = { ...init, headers };
  }
  return fetch(url, init);
};

const provider = createOpenAICompatible({
  name: "siliconflow",
  baseURL: process.env.SFMOCK_API_URL,
  apiKey: "sk-node-0123456789",
  ...(process.argv.includes("--no-custom-fetch") ? {} : { fetch: presignedDownloadsWithoutKey }),
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
