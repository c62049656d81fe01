// Bundled by esbuild for the browser test: the real Azure Mobile Apps JavaScript client SDK from npm,
// exposed as window.WindowsAzure as its standalone bundle did.
window.WindowsAzure = require("azure-mobile-apps-client");
