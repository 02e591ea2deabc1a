#!/usr/bin/env node
// GetMedia and GetMediaForFragmentList with the AWS SDK for JavaScript v3
// (@aws-sdk/client-kinesis-video-media and -archived-media, pinned in package.json): writes the payload to
// OUT as it streams in and prints one JSON line {contentType, bytes}.
//
//   node get_media.mjs ENDPOINT STREAM OUT get-media START_SELECTOR_JSON
//   node get_media.mjs ENDPOINT STREAM OUT get-media-for-fragment-list NUMBER...
//
// Credentials and region come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
// Exit code: 0 on success, 1 on an SDK error (printed as {error, message, status}), 2 on bad usage.

import fs from "node:fs";
import { GetMediaCommand, KinesisVideoMediaClient } from "@aws-sdk/client-kinesis-video-media";
import {
  GetMediaForFragmentListCommand,
  KinesisVideoArchivedMediaClient,
} from "@aws-sdk/client-kinesis-video-archived-media";

const [endpoint, stream, out, op, ...rest] = process.argv.slice(2);
if (!op || !["get-media", "get-media-for-fragment-list"].includes(op)) {
  console.error("usage: get_media.mjs ENDPOINT STREAM OUT get-media SELECTOR_JSON | get-media-for-fragment-list N...");
  process.exit(2);
}
try {
  const r = op === "get-media"
    ? await new KinesisVideoMediaClient({ endpoint, maxAttempts: 1 }).send(
      new GetMediaCommand({ StreamName: stream, StartSelector: JSON.parse(rest[0]) }))
    : await new KinesisVideoArchivedMediaClient({ endpoint, maxAttempts: 1 }).send(
      new GetMediaForFragmentListCommand({ StreamName: stream, Fragments: rest }));
  // The payload is a Node.js Readable: written chunk by chunk, as a live reader would.
  const file = fs.createWriteStream(out);
  let bytes = 0;
  for await (const chunk of r.Payload) {
    bytes += chunk.length;
    if (!file.write(chunk)) await new Promise((resolve) => file.once("drain", resolve));
  }
  await new Promise((resolve) => file.end(resolve));
  process.stdout.write(JSON.stringify({ contentType: r.ContentType, bytes }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ error: e.name, message: e.message, status: e.$metadata?.httpStatusCode }) + "\n");
  process.exit(1);
}
