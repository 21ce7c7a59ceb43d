// Node's http client with "Expect: 100-continue" (issue 9): sends N POSTs
// on one keep-alive connection, then N at once on up to 4 connections; each
// writes its body on 'continue', as Node's documentation shows. Prints one
// JSON line: per request its status, body, how many 'continue' events came,
// and any error ("write after end" when a second 'continue' comes).
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 5);

function post(agent, i) {
    return new Promise((resolve) => {
        const body = 'body-' + i;
        const out = { i, cont: 0, status: 0, body: '', error: null };
        const req = http.request({
            host: '127.0.0.1', port, method: 'POST', path: '/p' + i, agent,
            headers: { 'Expect': '100-continue', 'Content-Length': Buffer.byteLength(body) },
        });
        req.on('continue', () => {
            out.cont++;
            try {
                req.end(body);
            } catch (e) {
                out.error = String(e && e.message);
            }
        });
        req.on('error', (e) => { out.error = out.error || String(e && e.message); resolve(out); });
        req.on('response', (res) => {
            out.status = res.statusCode;
            res.setEncoding('utf8');
            res.on('data', (d) => { out.body += d; });
            res.on('end', () => setImmediate(() => resolve(out)));
        });
        req.setTimeout(10000, () => { out.error = 'timeout'; req.destroy(); });
    });
}

(async () => {
    const results = [];
    const one = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < n; i++)
        results.push(await post(one, i));
    const four = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const batch = [];
    for (let i = n; i < 2 * n; i++)
        batch.push(post(four, i));
    results.push(...await Promise.all(batch));
    one.destroy();
    four.destroy();
    process.stdout.write(JSON.stringify(results) + '\n');
})();
