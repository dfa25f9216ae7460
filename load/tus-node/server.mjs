// Reference server for load/bench-single-stream: @tus/server + @tus/file-store, no auth,
// no encryption. Listens on 127.0.0.1:$PORT (0 = any free port) and prints
// "tus-node listening on http://127.0.0.1:PORT" once bound. Files go to $TUS_DIR.
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";
import { Readable } from "node:stream";

// FileStore.read() hands a Node stream to `new Response()`; on Node 20 undici's async-iterator
// path for such bodies races and throws "ReadableStream is already closed" after a GET ends,
// killing the process (every @tus/server 2.x we tried, 2.2.1 to 2.4.5). Handing it a web
// stream instead takes undici's plain path; the bytes still come from FileStore's file.
class Node20FileStore extends FileStore {
  read(id) {
    return Readable.toWeb(super.read(id));
  }
}

const dir = process.env.TUS_DIR;
if (!dir) {
  console.error("TUS_DIR is required");
  process.exit(2);
}
const port = Number(process.env.PORT ?? 0);

const tus = new Server({
  path: "/files",
  datastore: new Node20FileStore({ directory: dir }),
});
const http = tus.listen({ host: "127.0.0.1", port }, () => {
  console.log(`tus-node listening on http://127.0.0.1:${http.address().port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
