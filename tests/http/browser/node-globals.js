// Node's `process` and `Buffer` globals, which some of the SDK's dependencies use; the SDK's own
// webpack build supplied them (and the util, assert and stream polyfills) the same way.
import { Buffer } from "buffer/index.js";
import process from "process/browser.js";

export { Buffer, process };
