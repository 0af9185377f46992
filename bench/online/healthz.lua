-- GET /healthz: the HTTP stack's own ceiling (no database, no crypto), one static request.
-- Usage: wrk -t2 -cN -dS --latency -s bench/online/healthz.lua http://127.0.0.1:PORT
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

wrk.method = "GET"
wrk.path = "/healthz"
