-- wrk script used by bench/bench.py.
--
-- BENCH_CONNECT=127.0.0.1 makes wrk connect to that address while the URL's host name stays the
-- TLS server name (SNI) and the Host header: the benchmark host names (bench.localhost) need not
-- resolve, and nothing is added to /etc/hosts.
--
-- done() prints one line "BENCHJSON {...}" with the raw counters; bench.py parses it. No
-- request()/response() hooks are defined, so wrk keeps its fast path (no Lua per request).

local connect = os.getenv("BENCH_CONNECT")
if connect ~= nil and connect ~= "" then
    function wrk.resolve(host, service)
        wrk.addrs = wrk.lookup(connect, service)
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCHJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"connect\":%d,\"read\":%d," ..
        "\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d," ..
        "\"mean_us\":%.1f,\"max_us\":%d}\n",
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
        e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.mean, latency.max))
end
