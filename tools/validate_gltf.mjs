// Validate a .glb/.gltf file with the Khronos glTF validator and print its JSON report on stdout.
//   node tools/validate_gltf.mjs FILE [--max-issues N]
// Exit status: 0 when the validator ran (read the report for errors/warnings), 2 on usage or I/O
// errors, 3 when the validator could not parse the input at all.
import { readFile } from "node:fs/promises";
import path from "node:path";
import validator from "gltf-validator";

const args = process.argv.slice(2);
if (args.length < 1 || args[0].startsWith("-")) {
  console.error("usage: node validate_gltf.mjs FILE [--max-issues N]");
  process.exit(2);
}
const file = path.resolve(args[0]);
const maxIdx = args.indexOf("--max-issues");
const maxIssues = maxIdx >= 0 ? Number(args[maxIdx + 1]) : 200;

let bytes;
try {
  bytes = new Uint8Array(await readFile(file));
} catch (err) {
  console.error(`cannot read ${file}: ${err.message}`);
  process.exit(2);
}

try {
  const report = await validator.validateBytes(bytes, {
    uri: path.basename(file),
    maxIssues,
    // External buffers and images of a .gltf are resolved next to the file.
    externalResourceFunction: (uri) =>
      readFile(path.resolve(path.dirname(file), decodeURIComponent(uri))).then((b) => new Uint8Array(b)),
  });
  process.stdout.write(JSON.stringify(report, null, 1) + "\n");
} catch (err) {
  console.error(`validator could not read ${file}: ${err}`);
  process.exit(3);
}
