// ort_run.js: times ONNX Runtime's CPU provider on one model, for
// `make bench` (bench/run.py). A benchmark peer, not a test.
//
//   node bench/ort_run.js MODEL.onnx X.npy N THREADS
//
// Loads the model (all graph optimizations, as ORT's default), feeds the
// fp32 .npy as the first input, runs once to warm up, then N times, and
// prints {"median_ms", "best_ms", "cpu_ms"} as JSON (cpu_ms: the median
// CPU time of the process per run, all threads). onnxruntime-node is found through
// NODE_PATH (run.py installs it with `npm install --ignore-scripts`).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// A little-endian fp32 .npy (versions 1 to 3, C order).
function readNpy(path) {
    const buf = fs.readFileSync(path);
    const major = buf[6];
    const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
    const start = (major === 1 ? 10 : 12) + hlen;
    const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
    if (!header.includes("'<f4'") || header.includes("'fortran_order': True"))
        throw new Error(`${path}: expected a C-order <f4 array`);
    const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',')
        .map((s) => s.trim()).filter((s) => s.length).map(Number);
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start,
                                                   buf.byteOffset + buf.length));
    return { shape, data };
}

async function main() {
    const [model, xPath, nStr, threads] = process.argv.slice(2);
    const n = Number(nStr || 10);
    const session = await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        intraOpNumThreads: Number(threads || 1),
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
    });
    const x = readNpy(xPath);
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
    await session.run(feeds);
    const times = [], cpu = [];
    for (let i = 0; i < n; i++) {
        const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
        await session.run(feeds);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1e3);
    }
    times.sort((a, b) => a - b);
    cpu.sort((a, b) => a - b);
    console.log(JSON.stringify({ median_ms: times[n >> 1], best_ms: times[0],
                                 cpu_ms: cpu[n >> 1], runs: n }));
}

main().catch((e) => { console.error(`ort_run: ${e.message}`); process.exit(2); });
