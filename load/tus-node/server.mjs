// Reference server for load/bench-single-stream and load/bench-concurrency: @tus/server, no
// auth, no encryption. Listens on 127.0.0.1:$PORT (0 = any free port) and prints
// "tus-node listening on http://127.0.0.1:PORT" once bound.
//
// Store: @tus/file-store in $TUS_DIR by default; @tus/s3-store when $TUS_S3_BUCKET is set,
// with $TUS_S3_ENDPOINT (path-style), $AWS_REGION (default eu-central-1), the standard
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and $TUS_S3_PART_SIZE (bytes; default the
// store's own 8 MiB). The S3 store spools each part to os.tmpdir() ($TMPDIR) before sending it.
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";
import { S3Store } from "@tus/s3-store";
import { Readable } from "node:stream";

// FileStore.read() hands a Node stream to `new Response()`; on Node 20 undici's async-iterator
// path for such bodies races and throws "ReadableStream is already closed" after a GET ends,
// killing the process (every @tus/server 2.x we tried, 2.2.1 to 2.4.5). Handing it a web
// stream instead takes undici's plain path; the bytes still come from the store.
class Node20FileStore extends FileStore {
  read(id) {
    return Readable.toWeb(super.read(id));
  }
}
class Node20S3Store extends S3Store {
  async read(id) {
    const body = await super.read(id);
    return body instanceof Readable ? Readable.toWeb(body) : body;
  }
}

function datastore() {
  const bucket = process.env.TUS_S3_BUCKET;
  if (bucket) {
    const partSize = Number(process.env.TUS_S3_PART_SIZE ?? 0) || undefined;
    return new Node20S3Store({
      partSize,
      s3ClientConfig: {
        bucket,
        region: process.env.AWS_REGION ?? "eu-central-1",
        endpoint: process.env.TUS_S3_ENDPOINT || undefined,
        forcePathStyle: Boolean(process.env.TUS_S3_ENDPOINT),
        // As Ferry's S3 client: checksums only where S3 requires them.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
      },
    });
  }
  const dir = process.env.TUS_DIR;
  if (!dir) {
    console.error("TUS_DIR (FileStore) or TUS_S3_BUCKET (S3Store) is required");
    process.exit(2);
  }
  return new Node20FileStore({ directory: dir });
}

const port = Number(process.env.PORT ?? 0);
const tus = new Server({ path: "/files", datastore: datastore() });
const http = tus.listen({ host: "127.0.0.1", port }, () => {
  console.log(`tus-node listening on http://127.0.0.1:${http.address().port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
