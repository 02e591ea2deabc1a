#!/usr/bin/env node
// GetClip with the AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis-video-archived-media, pinned in
// package.json): writes the payload to OUT and prints one JSON line {contentType, bytes}.
//
//   node get_clip.mjs ENDPOINT STREAM PRODUCER_TIMESTAMP|SERVER_TIMESTAMP START_EPOCH_S END_EPOCH_S OUT
//
// Credentials and region come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
// Exit code: 0 on success, 1 on an SDK error (printed as {error, message, status}), 2 on bad usage.

import fs from "node:fs";
import { GetClipCommand, KinesisVideoArchivedMediaClient } from "@aws-sdk/client-kinesis-video-archived-media";

const [endpoint, stream, type, start, end, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: get_clip.mjs ENDPOINT STREAM TYPE START END OUT");
  process.exit(2);
}
const client = new KinesisVideoArchivedMediaClient({ endpoint, maxAttempts: 1 });
try {
  const r = await client.send(new GetClipCommand({
    StreamName: stream,
    ClipFragmentSelector: {
      FragmentSelectorType: type,
      TimestampRange: { StartTimestamp: new Date(Number(start) * 1000), EndTimestamp: new Date(Number(end) * 1000) },
    },
  }));
  const bytes = await r.Payload.transformToByteArray();
  fs.writeFileSync(out, bytes);
  process.stdout.write(JSON.stringify({ contentType: r.ContentType, bytes: bytes.length }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ error: e.name, message: e.message, status: e.$metadata?.httpStatusCode }) + "\n");
  process.exit(1);
}
