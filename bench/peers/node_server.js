// The Node.js peer of bench/peers/run.sh: an https server (TLS 1.3 only, keep-alive without idle
// limit) answering every request with the same 13-byte body as nginx and holdfast.
// Usage: node node_server.js PORT CERT_FILE KEY_FILE
'use strict';
const fs = require('fs');
const https = require('https');

const [port, certFile, keyFile] = process.argv.slice(2);
const body = 'hello, world\n';
const server = https.createServer(
  { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), minVersion: 'TLSv1.3' },
  (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
  });
server.keepAliveTimeout = 0; // hold idle connections as long as the client does
server.headersTimeout = 0;
server.requestTimeout = 0;
server.maxConnections = 100000;
server.listen(Number(port), '127.0.0.1', () => console.log(`listening on https://127.0.0.1:${port}`));
