-- Shared by the online benchmark's wrk scripts (bench/online.sh): numbers the threads, counts
-- the replies by status (and the 2xx bodies lacking an expected string), and prints one summary
-- line, "ONLINE key=value ...", that bench/online.sh parses. Latencies are in microseconds.
local threads = {}

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

-- Per thread (each wrk thread has a Lua state of its own).
ok, non2xx, unexpected = 0, 0, 0
sent = 0 -- requests made by a script's request() (0 for a static request)
expect = nil -- a string every 2xx body must contain, or nil

function response(status, headers, body)
    if status >= 200 and status < 300 then
        ok = ok + 1
        if expect ~= nil and (body == nil or not string.find(body, expect, 1, true)) then
            unexpected = unexpected + 1
        end
    else
        non2xx = non2xx + 1
    end
end

-- The first line of a file (a bearer token: read from a file, never from argv).
function first_line(path)
    local f = assert(io.open(path, "r"))
    local line = f:read("*l")
    f:close()
    assert(line ~= nil and #line > 0, path .. " is empty")
    return line
end

function done(summary, latency, requests)
    local good, bad, odd, made = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        made = made + t:get("sent")
        good = good + t:get("ok")
        bad = bad + t:get("non2xx")
        odd = odd + t:get("unexpected")
    end
    if made > 0 then
        made = made - 1 -- wrk calls request() once before the run, to check it, sending nothing
    end
    local e = summary.errors
    io.write(string.format("ONLINE sent=%d requests=%d duration_us=%d ok=%d non2xx=%d unexpected=%d " ..
                               "connect=%d read=%d write=%d timeout=%d status=%d " ..
                               "p50_us=%d p99_us=%d max_us=%d\n",
                           made, summary.requests, summary.duration, good, bad, odd, e.connect, e.read,
                           e.write, e.timeout, e.status, latency:percentile(50),
                           latency:percentile(99), latency.max))
end
